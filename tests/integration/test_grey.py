#!/usr/bin/env python3
"""`kamaelia grey`, the greylisting SMTP proxy, with real peers: swaks and
Python smtplib as clients; Postfix's smtp-sink and a recording Python SMTP
server as upstreams. Loopback only; every process is stopped by pid."""

from __future__ import annotations

import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from engines import SmtpSink  # noqa: E402
from harness import Daemon, TestFailure, free_port  # noqa: E402

t = harness.Tests("grey")
DELAY = 2  # greylist delay of these tests (seconds)


class RecordingMTA:
    """A tiny upstream SMTP server that keeps the raw bytes of every DATA."""

    def __init__(self, port: int = 0, final: bytes = b"250 2.0.0 Ok: queued as TEST1", stall: bool = False):
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", port))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        self.final = final
        self.stall = stall  # takes each message, then never answers its final dot
        self.messages: list[bytes] = []
        self.commands: list[bytes] = []
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.srv.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._session, args=(c,), daemon=True).start()

    def _session(self, c: socket.socket):
        f = c.makefile("rb")
        try:
            c.sendall(b"220 rec.test ESMTP\r\n")
            while True:
                line = f.readline()
                if not line:
                    return
                self.commands.append(line.rstrip(b"\r\n"))
                verb = line[:4].upper()
                if verb == b"EHLO":
                    c.sendall(b"250-rec.test\r\n250-PIPELINING\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n250 8BITMIME\r\n")
                elif verb == b"DATA":
                    c.sendall(b"354 go\r\n")
                    data = b""
                    while True:
                        l = f.readline()
                        if not l:
                            return  # a message cut off is discarded, as a real MTA does
                        if l == b".\r\n":
                            break
                        data += l
                    self.messages.append(data)
                    if self.stall:
                        while f.readline():  # silent until the proxy gives up and closes
                            pass
                        return
                    c.sendall(self.final + b"\r\n")
                elif verb == b"QUIT":
                    c.sendall(b"221 bye\r\n")
                    return
                else:
                    c.sendall(b"250 2.0.0 Ok\r\n")
        finally:
            c.close()

    def close(self):
        self.stop = True
        self.srv.close()


def grey(k, upstream_port: int, *extra: str, data_dir: str | None = None) -> Daemon:
    args = ["--bind", "127.0.0.1", "--port", "0", "--upstream", f"127.0.0.1:{upstream_port}",
            "--delay", str(DELAY), "--allowed-domain", "example.org", "--servername", "mx.test", *extra]
    if data_dir:
        return Daemon(k, "grey", *args, "--data-dir", data_dir, raw=True)
    return Daemon(k, "grey", *args)


def swaks(port: int, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["swaks", "--server", f"127.0.0.1:{port}", "--from", "alice@sender.test",
                           "--to", "bob@example.org", "--helo", "client.test", "--timeout", "30", *extra],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)


def wait_past_delay():
    time.sleep(DELAY + 1.5)  # the greylist's own clock must move past the delay


@t.test
def swaks_deferred_then_delivered(k):
    sink = SmtpSink(free_port())
    try:
        with grey(k, sink.port) as d:
            first = swaks(d.port, "--body", "first try")
            t.eq(first.returncode, 24, "swaks: no recipient accepted on the first try (exit 24)")
            t.check(b"451 4.7.1" in first.stdout, "451 4.7.1 at RCPT")
            t.eq(sink.dumps(), [], "nothing relayed while greylisted")
            wait_past_delay()
            body = "line one\n.line with a leading dot\n..two dots\nlast line"
            second = swaks(d.port, "--body", body, "--header", "Subject: greylisting test")
            t.eq(second.returncode, 0, f"swaks delivered after the delay:\n{second.stdout.decode()[-600:]}")
            dumps = sink.dumps()
            t.require(len(dumps) == 1, f"one message at smtp-sink, got {len(dumps)}")
            msg = dumps[0]
            t.check(b"\nReceived: from client.test ([127.0.0.1])" in msg, "our Received: header")
            t.check(b"X-Greylist: delayed" in msg, "X-Greylist: header")
            t.check(b"X-Mail-Args: <alice@sender.test>" in msg, "the envelope sender reached smtp-sink")
            t.check(b"Subject: greylisting test\n" in msg, "the headers arrived")
            t.check(msg.rstrip(b"\n").endswith(b"line one\n.line with a leading dot\n..two dots\nlast line"),
                    f"the body arrived unchanged (dot-stuffing undone by the sink): {msg[-120:]!r}")
            t.check(d.wait_log(r"\| client\.test \| 127\.0\.0\.1 \| <alice@sender\.test> \| <bob@example\.org> \| "
                               r"DEFERRED"), "session log: DEFERRED line")
            t.check(d.wait_log(r"\| ACCEPTED \| upstream: 250"), "session log: ACCEPTED line")
    finally:
        sink.close()


@t.test
def smtplib_byte_exact_relay(k):
    mta = RecordingMTA()
    try:
        with grey(k, mta.port) as d:
            msg = (b"From: a@sender.test\r\nTo: u@example.org\r\nSubject: exact\r\n\r\n"
                   b".leading dot\r\n..two\r\n.\r\n" + b"x" * 998 + b"\r\n\xc3\xa9 8bit\r\nend")
            with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
                s.ehlo("client.test")
                t.check(s.has_extn("pipelining") and s.has_extn("size") and s.has_extn("8bitmime"),
                        "EHLO offers PIPELINING, SIZE, 8BITMIME")
                t.check(not s.has_extn("starttls"), "no STARTTLS without a certificate")
                try:
                    s.sendmail("a@sender.test", ["u@example.org"], msg)
                    t.check(False, "the first try must be deferred")
                except smtplib.SMTPRecipientsRefused as e:
                    t.eq(e.recipients["u@example.org"][0], 451, "451 on the first try")
                s.rset()
                wait_past_delay()
                refused = s.sendmail("a@sender.test", ["u@example.org"], msg, mail_options=["BODY=8BITMIME"])
                t.eq(refused, {}, "accepted after the delay")
                t.eq(s.noop()[0], 250, "the session stays usable")
            t.require(len(mta.messages) == 1, "one message upstream")
            got = mta.messages[0]
            # Upstream sees the stuffed stream; smtplib stuffed exactly the lines that start with '.'.
            wire = msg.replace(b"\r\n.", b"\r\n..")
            wire = (b"." + wire if wire.startswith(b".") else wire) + b"\r\n"
            t.check(got.startswith(b"Received: from client.test ([127.0.0.1])\r\n"), "Received: first")
            t.check(got.endswith(wire), f"byte-exact body: tail {got[-80:]!r}")
            t.check(any(c.startswith(b"XFORWARD ") and b"ADDR=127.0.0.1" in c for c in mta.commands),
                    "XFORWARD with the client address")
            t.check(b"MAIL FROM:<a@sender.test> BODY=8BITMIME" in mta.commands, "BODY=8BITMIME relayed")
    finally:
        mta.close()


@t.test
def relay_denied_and_allowed_networks(k):
    mta = RecordingMTA()
    try:
        with grey(k, mta.port, "--allowed-sender-net", "10.0.0.0/8") as d:
            with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
                s.ehlo("client.test")
                s.mail("a@sender.test")
                code, text = s.rcpt("victim@elsewhere.test")
                t.eq(code, 550, f"relay refused ({text!r})")
                code, _ = s.rcpt("postmaster")
                t.eq(code, 250, "postmaster accepted")
                code, _ = s.rcpt("POSTMASTER@example.org")
                t.eq(code, 250, "postmaster@ our domain: on the greylist's default whitelist")
                code, _ = s.rcpt("bob@example.org")
                t.eq(code, 451, "anyone else at our domain is greylisted")
        with grey(k, mta.port, "--allowed-sender-net", "127.0.0") as d:
            with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
                s.ehlo("client.test")
                refused = s.sendmail("a@sender.test", ["x@anywhere.test"], b"Subject: allowed\r\n\r\nhi\r\n")
                t.eq(refused, {}, "an allowed network relays at once, ungreylisted")
            t.eq(len(mta.messages), 1, "relayed")
    finally:
        mta.close()


@t.test
def too_many_recipients_and_size(k):
    mta = RecordingMTA()
    try:
        with grey(k, mta.port, "--allowed-sender-net", "127.0.0.1/32", "--max-message-size", "2000") as d:
            with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
                s.ehlo("client.test")
                t.check(s.esmtp_features.get("size") == "2000", "SIZE 2000 advertised")
                rcpts = [f"u{i}@example.org" for i in range(101)]
                refused = s.sendmail("a@sender.test", rcpts, b"Subject: many\r\n\r\nhi\r\n")
                t.eq(list(refused), ["u100@example.org"], "only the 101st refused")
                t.eq(refused["u100@example.org"][0], 452, "452 4.5.3")
                try:
                    s.sendmail("a@sender.test", ["u@example.org"], b"x" * 3000)
                    t.check(False, "an over-size message must be refused")
                except smtplib.SMTPDataError as e:
                    t.eq(e.smtp_code, 552, "552 for a body over SIZE")
                except smtplib.SMTPSenderRefused as e:
                    t.eq(e.smtp_code, 552, "552 for a declared SIZE over the limit")
            t.eq(len(mta.messages), 1, "the big one never went upstream")
            t.eq(sum(1 for c in mta.commands if c.startswith(b"RCPT")), 100, "100 recipients relayed")
    finally:
        mta.close()


@t.test
def upstream_down_then_back(k):
    port = free_port()
    with grey(k, port, "--allowed-sender-net", "127.0.0.1", "--upstream-backoff", "0.2") as d:
        with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
            s.ehlo("client.test")
            try:
                s.sendmail("a@sender.test", ["u@example.org"], b"Subject: down\r\n\r\nhi\r\n")
                t.check(False, "nothing may be acknowledged while the upstream is down")
            except smtplib.SMTPDataError as e:
                t.check(400 <= e.smtp_code < 500, f"a 4xx while the upstream is down: {e.smtp_code} {e.smtp_error!r}")
            s.rset()
            mta = RecordingMTA(port)
            try:
                deadline = time.monotonic() + 30
                delivered = False
                while not delivered and time.monotonic() < deadline:
                    try:
                        s.sendmail("a@sender.test", ["u@example.org"], b"Subject: back\r\n\r\nhi\r\n")
                        delivered = True
                    except smtplib.SMTPDataError:
                        s.rset()
                        time.sleep(0.3)
                t.check(delivered, "delivered once the upstream is back")
                t.eq(len(mta.messages), 1, "exactly one message upstream")
            finally:
                mta.close()


@t.test
def upstream_refusal_is_passed_on(k):
    mta = RecordingMTA(final=b"554 5.7.1 Rejected by policy")
    try:
        with grey(k, mta.port, "--allowed-sender-net", "127.0.0.1") as d:
            with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
                try:
                    s.sendmail("a@sender.test", ["u@example.org"], b"Subject: no\r\n\r\nhi\r\n")
                    t.check(False, "the upstream's refusal must reach the client")
                except smtplib.SMTPDataError as e:
                    t.eq((e.smtp_code, e.smtp_error), (554, b"5.7.1 Rejected by policy"), "the upstream's own reply")
    finally:
        mta.close()


@t.test
def smuggling_and_protocol_errors(k):
    mta = RecordingMTA()
    try:
        with grey(k, mta.port, "--allowed-sender-net", "127.0.0.1") as d:
            with d.client() as c:
                t.check(c.read_line().startswith(b"220 mx.test ESMTP"), "banner")
                c.send(b"ehlo client.test\r\n")
                t.check(c.read_until(b"250 ENHANCEDSTATUSCODES\r\n").startswith(b"250-mx.test"), "lower-case ehlo")
                c.send(b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n")
                t.eq(c.read_line(), b"250 2.1.0 Ok\r\n", "MAIL")
                t.eq(c.read_line(), b"250 2.1.5 Ok\r\n", "RCPT")
                t.check(c.read_line().startswith(b"354 "), "354")
                c.send(b"Subject: smuggle\r\n\r\nhi\n.\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<u@example.org>\r\n"
                       b"DATA\r\nsmuggled\r\n.\r\n")
                t.check(c.read_line().startswith(b"554 5.6.11"), "bare LF refuses the message")
                c.send(b"NOOP\r\nbogus\r\n" + b"A" * 600 + b"\r\n")
                t.eq(c.read_line(), b"250 2.0.0 Ok\r\n", "the session goes on")
                t.check(c.read_line().startswith(b"500 5.5.2"), "unknown command")
                t.eq(c.read_line(), b"500 5.5.2 Error: line too long\r\n", "over-long line")
                c.send(b"QUIT\r\n")
                t.check(c.read_line().startswith(b"221"), "QUIT")
            t.eq(mta.messages, [], "nothing relayed: no end of data was ever sent upstream")
    finally:
        mta.close()


@t.test
def shutdown_says_421(k):
    mta = RecordingMTA()
    try:
        d = grey(k, mta.port)
        with d:
            with d.client() as c:
                c.read_line()
                c.send(b"EHLO client.test\r\n")
                c.read_until(b"250 ENHANCEDSTATUSCODES\r\n")
                d.signal(signal.SIGTERM)
                t.check(c.read_line().startswith(b"421 4.3.2"), "421 4.3.2 to an idle session")
            t.eq(d.wait(), 0, "clean exit")
    finally:
        mta.close()


@t.test
def upstream_stalling_at_the_final_dot_gives_451(k):
    # Issue 14 defect 5: the client waiting on us is not cut by its idle
    # timeout; the upstream's own timeout gives 451 4.4.1, and it is logged.
    mta = RecordingMTA(stall=True)
    try:
        with grey(k, mta.port, "--allowed-sender-net", "127.0.0.1", "--idle-timeout", "1",
                  "--upstream-data-timeout", "4") as d:
            with d.client() as c:
                c.read_line()
                c.send(b"EHLO client.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n")
                c.read_until(b"354 ")
                c.read_line()
                c.send(b"Subject: stall\r\n\r\nbody\r\n.\r\n")
                start = time.monotonic()
                line = c.read_line(timeout=60)
                t.check(line.startswith(b"451 4.4.1 "), f"451 4.4.1 after the upstream's timeout, got {line!r}")
                t.check(time.monotonic() - start >= 3.5, "not before --upstream-data-timeout")
                c.send(b"QUIT\r\n")
                t.check(c.read_line().startswith(b"221 "), "the session goes on after the 451")
            t.check(d.wait_log(r"\| FAILED \| upstream timeout"), "session log: FAILED upstream timeout")
            t.eq(len(mta.messages), 1, "the upstream had the message (and never answered)")
    finally:
        mta.close()


@t.test
def upstream_timeouts_are_range_checked(k):
    tmp = tempfile.mkdtemp(prefix="kamaelia-it-grey-timeouts-")
    try:
        conf = os.path.join(tmp, "k.conf")
        with open(conf, "w") as f:
            f.write("[grey]\nupstream-data-timeout = 0\n")
        for args in (["--upstream-timeout", "1e12"], ["--upstream-data-timeout", "-5"], ["--config", conf]):
            r = subprocess.run([k, "grey", "--port", "0", "--data-dir", tmp, *args], capture_output=True, timeout=60)
            t.eq(r.returncode, 2, f"refused at start: {args}")
            t.check(b"must be 1 to 86400 seconds" in r.stderr, f"says why: {r.stderr[-200:]!r}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@t.test
def stop_mid_data_says_421(k):
    # A stop's grace ending while the client is in DATA: 421 4.3.2, logged, never a bare EOF.
    mta = RecordingMTA()
    try:
        d = grey(k, mta.port, "--allowed-sender-net", "127.0.0.1")
        with d:
            with d.client() as c:
                c.read_line()
                c.send(b"EHLO client.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n")
                c.read_until(b"354 ")
                c.read_line()
                c.send(b"Subject: half a message\r\n\r\n")
                d.signal(signal.SIGTERM)
                line = c.read_line(timeout=60)
                t.check(line.startswith(b"421 4.3.2 "), f"421 4.3.2 when the grace ends mid-DATA, got {line!r}")
            t.check(d.wait_log(r"\| FAILED \| server stopping during DATA"), "session log: the transaction")
            t.eq(d.wait(), 0, "clean exit")
            t.eq(mta.messages, [], "nothing delivered")
    finally:
        mta.close()


@t.test
def restart_keeps_passed_triplets(k):
    mta = RecordingMTA()
    data = tempfile.mkdtemp(prefix="kamaelia-it-grey-data-")
    try:
        def send():
            with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
                return s.sendmail("a@sender.test", ["u@example.org"], b"Subject: r\r\n\r\nhi\r\n")
        with grey(k, mta.port, data_dir=data) as d:
            try:
                send()
                t.check(False, "first try deferred")
            except smtplib.SMTPRecipientsRefused:
                pass
            wait_past_delay()
            t.eq(send(), {}, "passed after the delay")
        t.check(os.path.exists(os.path.join(data, "greylist.sqlite")), "greylist.sqlite in the data dir")
        with grey(k, mta.port, data_dir=data) as d:
            t.eq(send(), {}, "still passed after a restart")
        t.eq(len(mta.messages), 2, "two deliveries")
    finally:
        mta.close()
        shutil.rmtree(data, ignore_errors=True)


@t.test
def greylist_conf_is_accepted(k):
    mta = RecordingMTA()
    tmp = tempfile.mkdtemp(prefix="kamaelia-it-grey-conf-")
    try:
        good = os.path.join(tmp, "greylist.conf")
        with open(good, "w") as f:
            f.write("# Kamaelia Grey's syntax\nport = 0\nservername = conf.test\nsmtp_ip = 127.0.0.1\n"
                    f"smtp_port = {mta.port}\ninactivity_timeout = 300\nallowed_domains:\n    example.org\n"
                    "allowed_sender_nets:\n    127.0.0\n")
        with Daemon(k, "grey", "--bind", "127.0.0.1", "--config", good) as d:
            with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
                code, text = s.ehlo("client.test")
                t.check(text.startswith(b"conf.test"), f"servername from greylist.conf: {text[:40]!r}")
                t.eq(s.sendmail("a@sender.test", ["x@anywhere.test"], b"Subject: c\r\n\r\nhi\r\n"), {},
                     "the dotted prefix 127.0.0 allows the client")
            t.eq(len(mta.messages), 1, "relayed to smtp_ip:smtp_port")
        bad = os.path.join(tmp, "bad.conf")
        with open(bad, "w") as f:
            f.write("port = 0\n# fine so far\nsmtp_prot = 25\n")
        r = subprocess.run([k, "grey", "--bind", "127.0.0.1", "--config", bad], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        t.eq(r.returncode, 2, "an unknown key stops the start")
        t.check(b"bad.conf:3" in r.stdout and b"smtp_prot" in r.stdout, f"named with its line: {r.stdout[-200:]!r}")
        with open(bad, "w") as f:
            f.write("port = 0\nallowed_sender_nets:\n    192.168.2\n    not-a-net\n")
        r = subprocess.run([k, "grey", "--bind", "127.0.0.1", "--config", bad], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        t.eq(r.returncode, 2, "a bad network stops the start")
        t.check(b"bad.conf:4" in r.stdout, f"named with its line: {r.stdout[-200:]!r}")
    finally:
        mta.close()
        shutil.rmtree(tmp, ignore_errors=True)


@t.test
def ini_section_and_precedence(k):
    mta = RecordingMTA()
    tmp = tempfile.mkdtemp(prefix="kamaelia-it-grey-ini-")
    try:
        ini = os.path.join(tmp, "k.ini")
        with open(ini, "w") as f:
            f.write(f"[grey]\nbind = 127.0.0.1\nport = 0\nupstream = 127.0.0.1:{mta.port}\n"
                    "allowed-domain = example.net, example.org\nallowed-sender-net = 127.0.0.0/8\n"
                    "servername = ini.test\nmax-recipients = 2\n")
        with Daemon(k, "grey", "--config", ini, "--servername", "flag.test", raw=True) as d:
            with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
                code, text = s.ehlo("client.test")
                t.check(text.startswith(b"flag.test"), f"a flag wins over the file: {text[:30]!r}")
                refused = s.sendmail("a@sender.test", ["a@example.net", "b@example.org", "c@example.org"],
                                     b"Subject: ini\r\n\r\nhi\r\n")
                t.eq(list(refused), ["c@example.org"], "max-recipients = 2 from the file")
            t.eq(len(mta.messages), 1, "relayed to the file's upstream")
        with open(ini, "w") as f:
            f.write("[grey]\nport = 0\n\nbogus-key = 1\n")
        r = subprocess.run([k, "grey", "--config", ini], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        t.eq(r.returncode, 2, "an unknown [grey] key stops the start")
        t.check(b"k.ini:4" in r.stdout, f"named with its line: {r.stdout[-200:]!r}")
    finally:
        mta.close()
        shutil.rmtree(tmp, ignore_errors=True)


@t.test
def starttls_with_a_certificate(k):
    mta = RecordingMTA()
    tmp = tempfile.mkdtemp(prefix="kamaelia-it-grey-tls-")
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    try:
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-subj", "/CN=localhost", "-days", "1", "-keyout", key, "-out", cert],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        t.require(r.returncode == 0, f"openssl req: {r.stderr[-200:]!r}")
        ctx = ssl.create_default_context(cafile=cert)
        with grey(k, mta.port, "--allowed-sender-net", "127.0.0.1", "--tls-cert", cert, "--tls-key", key) as d:
            with smtplib.SMTP("localhost", d.port, timeout=30) as s:
                s.ehlo("client.test")
                t.check(s.has_extn("starttls"), "STARTTLS offered with a certificate")
                code, _ = s.starttls(context=ctx)
                t.eq(code, 220, "220 Ready to start TLS")
                s.ehlo("client.test")
                t.check(not s.has_extn("starttls"), "no STARTTLS once in TLS")
                t.eq(s.sendmail("a@sender.test", ["u@example.org"], b"Subject: tls\r\n\r\nsecret\r\n"), {},
                     "mail over TLS relayed")
            t.eq(len(mta.messages), 1, "one message upstream")
            # CVE-2011-0411: a command sent in clear behind STARTTLS is never answered.
            raw = socket.create_connection(("127.0.0.1", d.port), timeout=30)
            f = raw.makefile("rb")
            f.readline()
            raw.sendall(b"EHLO client.test\r\n")
            while not f.readline().startswith(b"250 "):
                pass
            raw.sendall(b"STARTTLS\r\nRSET\r\n")
            t.check(f.readline().startswith(b"220 "), "220 to STARTTLS")
            tls = ctx.wrap_socket(raw, server_hostname="localhost")
            tls.sendall(b"NOOP\r\n")
            first = tls.recv(4096)
            t.eq(first, b"250 2.0.0 Ok\r\n", "the first reply in TLS answers NOOP, not the injected RSET")
            tls.sendall(b"QUIT\r\n")
            tls.close()
    finally:
        mta.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":  # the hostile suite imports its helpers
    t.main()
