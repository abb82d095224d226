#!/usr/bin/env python3
"""`kamaelia grey` in front of a real Postfix: a private instance in a
temporary directory (its own main.cf/master.cf, queue, data dir, mailbox
spool and log file; smtpd on a free 127.0.0.1 port), started with
`postfix -c DIR start` and stopped with `postfix -c DIR stop`. Needs root
(Postfix drops privileges to its own user); otherwise it says so and checks
nothing else."""

from __future__ import annotations

import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon, TestFailure, free_port  # noqa: E402

t = harness.Tests("grey_postfix")
DELAY = 2


def postfix_cmd(conf: str, *args: str) -> subprocess.CompletedProcess:
    # Postfix reports on stderr only to a terminal: `script` gives it one.
    cmd = " ".join(["postfix", "-c", conf, *args])
    return subprocess.run(["script", "-qec", cmd, "/dev/null"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=120)


class Postfix:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kamaelia-it-postfix-")
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "etc")
        self.spool = os.path.join(self.dir, "mail")
        self.log = os.path.join(self.dir, "postfix.log")
        data = os.path.join(self.dir, "data")
        for d in (self.conf, os.path.join(self.dir, "queue"), data, self.spool):
            os.makedirs(d)
        shutil.chown(data, "postfix")
        os.chmod(self.spool, 0o1777)
        self.port = free_port()
        with open("/etc/postfix/master.cf") as f:
            master = f.read()
        master = master.replace("smtp      inet  n       -       y       -       -       smtpd",
                                f"127.0.0.1:{self.port} inet n - n - - smtpd")
        if f"127.0.0.1:{self.port}" not in master:
            raise TestFailure("cannot find the smtpd line in /etc/postfix/master.cf")
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(master)
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(f"""compatibility_level = 3.6
queue_directory = {self.dir}/queue
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = pf.test
mydomain = pf.test
myorigin = pf.test
mydestination = example.org
mynetworks = 127.0.0.0/8
local_recipient_maps =
alias_maps =
alias_database =
mail_spool_directory = {self.spool}
maillog_file_prefixes = {self.dir}
maillog_file = {self.log}
smtpd_authorized_xforward_hosts = 127.0.0.0/8
smtpd_forbid_bare_newline = yes
""")
        r = postfix_cmd(self.conf, "start")
        if r.returncode != 0:
            raise TestFailure(f"postfix start failed: {r.stdout.decode()[-500:]}")
        harness_deadline = time.monotonic() + 60
        while time.monotonic() < harness_deadline:
            try:
                smtplib.SMTP("127.0.0.1", self.port, timeout=5).quit()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TestFailure("postfix smtpd did not come up")

    def mailbox(self, user: str = "nobody") -> bytes:
        try:
            with open(os.path.join(self.spool, user), "rb") as f:
                return f.read()
        except OSError:
            return b""

    def log_text(self) -> str:
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        postfix_cmd(self.conf, "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


@t.test
def deferred_then_delivered_into_postfix(k):
    if os.geteuid() != 0 or not shutil.which("postfix") or not os.path.exists("/etc/postfix/master.cf"):
        t.note("needs root and Postfix: not run")
        return
    pf = Postfix()
    try:
        with Daemon(k, "grey", "--bind", "127.0.0.1", "--port", "0", "--upstream", f"127.0.0.1:{pf.port}",
                    "--delay", str(DELAY), "--allowed-domain", "example.org", "--servername", "mx.test") as d:
            body = b"Subject: to postfix\r\n\r\nfirst line\r\n.dot line\r\nlast line\r\n"
            with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
                s.ehlo("client.test")
                try:
                    s.sendmail("a@sender.test", ["nobody@example.org"], body)
                    t.check(False, "the first try must be deferred")
                except smtplib.SMTPRecipientsRefused as e:
                    t.eq(e.recipients["nobody@example.org"][0], 451, "451 first")
            time.sleep(DELAY + 1.5)
            with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
                s.ehlo("client.test")
                code, text = s.docmd("MAIL", "FROM:<a@sender.test>")
                t.eq(code, 250, "MAIL")
                t.eq(s.rcpt("nobody@example.org")[0], 250, "RCPT passes after the delay")
                code, text = s.data(body)
                t.eq(code, 250, "Postfix accepted")
                t.check(b"queued as" in text, f"the client hears Postfix's own reply: {text!r}")
            deadline = time.monotonic() + 60
            while b"last line" not in pf.mailbox() and time.monotonic() < deadline:
                time.sleep(0.1)
            box = pf.mailbox()
            t.check(b"\nReceived: from client.test ([127.0.0.1])\n\tby mx.test (Kamaelia Grey)" in box,
                    "our Received: header in the delivered mail")
            t.check(box.rstrip(b"\n").endswith(b"\n\nfirst line\n.dot line\nlast line"),
                    f"the body delivered unchanged: {box[-80:]!r}")
            log = pf.log_text()
            t.check("xforward=1" in log and "orig_client=unknown[127.0.0.1]" in log,
                    "Postfix took XFORWARD (the real client in its log)")
    finally:
        pf.stop()


t.main()
