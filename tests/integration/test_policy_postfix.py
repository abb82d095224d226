#!/usr/bin/env python3
"""A real Postfix smtpd asks `kamaelia policy` (check_policy_service).

A private Postfix instance lives in a temporary directory (`postfix -c DIR
start`, stopped with `postfix -c DIR stop`; never the system instance),
listening on a free 127.0.0.1 port, delivering to the discard transport; a
header_checks WARN rule logs the X-Greylist header cleanup sees. swaks is
the SMTP client. Needs root (Postfix's master) and the postfix package; the
test says so and fails if they are missing.

The policy server runs with --delay 1 so that a real retry passes: the test
waits at least 1.5 s between attempts, and a longer wait only passes more
surely (the retry window is days), so a slow machine cannot make it flaky.
"""
import contextlib
import os
import shutil
import sqlite3
import subprocess
import time

import harness

t = harness.Tests("policy_postfix")

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60  1 pickup
cleanup   unix  n - n -   0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -   - trivial-rewrite
bounce    unix  - - n -   0 bounce
defer     unix  - - n -   0 bounce
trace     unix  - - n -   0 bounce
verify    unix  - - n -   1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -   - proxymap
showq     unix  n - n -   - showq
error     unix  - - n -   - error
retry     unix  - - n -   - error
discard   unix  - - n -   - discard
anvil     unix  - - n -   1 anvil
scache    unix  - - n -   1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.test.invalid
mydomain = test.invalid
mydestination = example.net
local_recipient_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file_prefixes = {dir}
maillog_file = {dir}/maillog
local_transport = discard:
default_transport = discard:
relay_transport = discard:
alias_maps =
alias_database =
header_checks = regexp:{dir}/conf/header_checks
smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:{policy_port}, permit
smtpd_policy_service_retry_delay = 1s
smtputf8_enable = no
biff = no
"""


class Postfix:
    def __init__(self, policy_port):
        self.dir = os.path.join(harness.tempfile.mkdtemp(prefix="kamaelia-postfix-"))
        os.chmod(self.dir, 0o755)  # Postfix's daemons run as the postfix user
        self.port = harness.free_port()
        conf = os.path.join(self.dir, "conf")
        os.makedirs(conf)
        os.makedirs(os.path.join(self.dir, "queue"))
        os.makedirs(os.path.join(self.dir, "data"))
        shutil.chown(os.path.join(self.dir, "data"), "postfix")
        with open(os.path.join(conf, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(dir=self.dir, policy_port=policy_port))
        with open(os.path.join(conf, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=self.port))
        with open(os.path.join(conf, "header_checks"), "w") as f:
            f.write("/^X-Greylist:/ WARN greylist header seen\n")
        self.conf = conf
        self.started = False

    def postfix(self, *args):
        # Postfix prints its errors only to a terminal or syslog: `script` gives it a terminal.
        cmd = " ".join(["postfix", "-c", self.conf] + list(args))
        return harness.run(["script", "-qec", cmd, "/dev/null"], timeout=60)

    def start(self):
        out = self.postfix("start")
        if out.returncode != 0:
            raise harness.TestFailure(f"postfix start failed: {out.stdout!r} {self.log()}")
        self.started = True
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                harness.Client("127.0.0.1", self.port, timeout=5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise harness.TestFailure("postfix smtpd is not listening")

    def stop(self):
        if self.started:
            self.postfix("stop")
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        try:
            with open(os.path.join(self.dir, "maillog")) as f:
                return f.read()
        except OSError:
            return ""


def swaks(port, rcpt, sender="alice@example.org", quit_after=None):
    argv = ["swaks", "--server", f"127.0.0.1:{port}", "--from", sender, "--to", rcpt, "--helo", "client.example",
            "--timeout", "60"]
    if quit_after:
        argv += ["--quit-after", quit_after]
    return harness.run(argv, timeout=120)


def usable():
    missing = [p for p in ("postfix", "swaks", "script") if not shutil.which(p)]
    if missing:
        return f"missing {missing}"
    if os.geteuid() != 0:
        return "Postfix's master needs root"
    return ""


@contextlib.contextmanager
def policy_and_postfix(k):
    """`kamaelia policy --delay 1` and a Postfix instance asking it; both stopped after."""
    why = usable()
    t.require(not why, f"cannot run a Postfix instance here: {why}")
    with harness.Daemon(k, "policy", "--bind", "127.0.0.1", "--port", "0", "--delay", "1") as d:
        pf = Postfix(d.port)
        try:
            pf.start()
            yield d, pf
        finally:
            pf.stop()


@t.test
def postfix_greylists_then_accepts(k):
    with policy_and_postfix(k) as (d, pf):
        first = swaks(pf.port, "bob@example.net", quit_after="RCPT")
        out = first.stdout.decode(errors="replace")
        t.check("450 4.2.0 <bob@example.net>: Recipient address rejected: Greylisted" in out, out)
        t.eq(first.returncode, 24, "swaks: no recipient accepted")
        time.sleep(1.5)
        second = swaks(pf.port, "bob@example.net")
        out = second.stdout.decode(errors="replace")
        t.eq(second.returncode, 0, f"the retry is accepted: {out}")
        t.check("250 2.0.0 Ok: queued" in out, out)
        deadline = time.monotonic() + 30
        while "greylist header seen" not in pf.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        log = pf.log()
        t.check("X-Greylist: delayed " in log and "by kamaelia-" in log, "X-Greylist prepended once: " + log[-2000:])
        t.eq(log.count("greylist header seen"), 1, "one header")
        # The pass is remembered: a third mail goes through without a header.
        third = swaks(pf.port, "bob@example.net")
        t.eq(third.returncode, 0, "pass memory")
        # postmaster is whitelisted
        t.eq(swaks(pf.port, "postmaster@example.net").returncode, 0, "postmaster")


@t.test
def postfix_defers_when_the_database_is_locked(k):
    with policy_and_postfix(k) as (d, pf):
        t.eq(swaks(pf.port, "carol@example.net", quit_after="RCPT").returncode, 24, "greylisted")
        time.sleep(1.5)
        db = sqlite3.connect(os.path.join(d.tmp, "var", "greylist.sqlite"), isolation_level=None, timeout=1)
        db.execute("BEGIN EXCLUSIVE")
        try:
            # This retry would pass; with the database locked it must be deferred.
            r = swaks(pf.port, "carol@example.net", quit_after="RCPT")
            out = r.stdout.decode(errors="replace")
            t.check("451 4.3.5 <carol@example.net>: Recipient address rejected: Server configuration problem" in out, out)
            t.eq(r.returncode, 24, "not accepted")
        finally:
            db.execute("ROLLBACK")
            db.close()
        t.check(d.wait_log("is locked by another process"), "a clear log line")
        t.eq(swaks(pf.port, "carol@example.net").returncode, 0, "accepted once the lock is gone")


t.main()
