#!/usr/bin/env python3
"""`kamaelia policy`: the Postfix policy protocol against the real daemon.

Time steps use postgrey's policy_test_time attribute, never sleeps; the
database checks read the SQLite file with Python's sqlite3.
"""
import os
import signal
import socket
import sqlite3
import threading
import time

import harness

t = harness.Tests("policy")

BASE = 1_800_000_000


def request(client="203.0.114.7", sender="a@example.org", rcpt="u@example.net", at=None, state="RCPT",
            instance="i1", extra=""):
    lines = ["request=smtpd_access_policy", f"protocol_state={state}", "protocol_name=ESMTP",
             f"client_address={client}", "client_name=unknown", "helo_name=mx.example.org",
             f"sender={sender}", f"recipient={rcpt}", f"instance={instance}"]
    if at is not None:
        lines.append(f"policy_test_time={at}")
    return ("\n".join(lines) + "\n" + extra + "\n").encode()


def ask(c, **kw):
    """One request on an open connection: the action line, or None if the server closed."""
    c.send(request(**kw))
    try:
        reply = c.read_until(b"\n\n")
    except harness.Closed:
        return None
    assert reply.startswith(b"action="), reply
    return reply[len(b"action="):-2].decode()


def policy(k, *args, data_dir=None, **kw):
    argv = ["--bind", "127.0.0.1", "--port", "0", "--test-hooks"]  # the tests step time with policy_test_time
    if data_dir:
        return harness.Daemon(k, "policy", *argv, "--data-dir", data_dir, *args, raw=True, **kw)
    return harness.Daemon(k, "policy", *argv, *args, **kw)


@t.test
def greylist_then_pass_on_one_connection(k):
    with policy(k) as d:
        c = d.client()
        a = ask(c, at=BASE)
        t.eq(a, "DEFER_IF_PERMIT Greylisted, see http://postgrey.schweikert.ch/help/example.net.html", "new")
        t.eq(ask(c, at=BASE + 60)[:15], "DEFER_IF_PERMIT", "early retry")
        a = ask(c, client="203.0.114.99", at=BASE + 301)  # same /24
        t.check(a.startswith("PREPEND X-Greylist: delayed 301 seconds by kamaelia-"), a)
        t.eq(ask(c, at=BASE + 400), "DUNNO", "the pass memory")
        t.eq(ask(c, state="DATA"), "DUNNO", "outside RCPT")
        t.eq(ask(c, rcpt="postmaster@example.net", at=BASE), "DUNNO", "default recipient whitelist")
        a = ask(c, sender="b@example.org", at=BASE, extra="etrn_domain=\n")
        t.check(a.startswith("DEFER_IF_PERMIT 4.2.0 Greylisted"), a)
        c.close()


@t.test
def header_once_per_instance(k):
    with policy(k, "--delay", "0") as d:
        c = d.client()
        a = ask(c, rcpt="r1@example.net", instance="msg1", at=BASE)
        t.check(a.startswith("PREPEND X-Greylist: delayed 0 seconds"), a)
        t.eq(ask(c, rcpt="r2@example.net", instance="msg1", at=BASE), "DUNNO", "second recipient, same message")
        t.check(ask(c, rcpt="r3@example.net", instance="msg2", at=BASE).startswith("PREPEND"), "next message")


@t.test
def options_delay_text_and_ipv6(k):
    with policy(k, "--delay", "60", "--greylist-text", "Come back in %s seconds (%r)") as d:
        c = d.client()
        t.eq(ask(c, client="2001:db8:1:3::25", at=BASE), "DEFER_IF_PERMIT Come back in 60 seconds (example.net)",
             "text")
        t.eq(ask(c, client="2001:db8:1:3::25", at=BASE + 20), "DEFER_IF_PERMIT Come back in 40 seconds (example.net)",
             "seconds left")
        t.check(ask(c, client="2001:db8:1:3:ffff::1", at=BASE + 60).startswith("PREPEND"), "same /64 passes")


@t.test
def bad_requests_close_the_connection(k):
    with policy(k, "--max-line", "1024") as d:
        c = d.client()
        c.send(b"this line has no equals sign\n\n")
        t.check(c.closed_by_server(), "malformed: closed")
        c2 = d.client()
        c2.send(b"x=" + b"y" * 5000)
        t.check(c2.closed_by_server(), "oversized: closed")
        c3 = d.client()  # the server is fine
        t.check(ask(c3, at=BASE).startswith("DEFER_IF_PERMIT"), "still serving")


@t.test
def restart_keeps_passed_triplets(k):
    with policy(k, start=False) as first:
        data = os.path.join(first.tmp, "var")
        first.argv += []
        first.start()
        c = first.client()
        ask(c, at=BASE)
        t.check(ask(c, at=BASE + 300).startswith("PREPEND"), "passed")
        c.close()
        t.eq(first.stop(), 0, "clean stop")
        with policy(k, data_dir=data) as second:
            c = second.client()
            t.eq(ask(c, at=BASE + 3600), "DUNNO", "still passed after a restart")
            t.eq(ask(c, sender="new@example.org", at=BASE + 3600)[:15], "DEFER_IF_PERMIT", "others still greylisted")
            c.close()
        out = harness.run([k, "grey-db", "stats", "--data-dir", data])
        t.eq(out.returncode, 0, "grey-db stats")
        t.check(b"triplets            2" in out.stdout, out.stdout)
        t.check(b"passed            1" in out.stdout, out.stdout)
        out = harness.run([k, "grey-db", "export", "--data-dir", data])
        t.check(b"triplet\t203.0.114.0/24\ta@example.org\tu@example.net\t" in out.stdout, out.stdout)
        out = harness.run([k, "grey-db", "expire", "--data-dir", data])
        t.eq(out.returncode, 0, "grey-db expire")
        t.check(b"expired 0 rows" in out.stdout, out.stdout)  # policy_test_time lies ahead of the real clock


@t.test
def kill_9_loses_no_acknowledged_decision(k):
    with policy(k) as d:
        data = os.path.join(d.tmp, "var")
        acked = []
        lock = threading.Lock()
        stop = threading.Event()

        def load(n):
            try:
                c = d.client(timeout=10)
                for i in range(100000):
                    if stop.is_set():
                        return
                    a = ask(c, sender=f"load{n}x{i}@example.org", rcpt=f"r{n}@example.net")
                    if a is None:
                        return
                    with lock:
                        acked.append((f"load{n}x{i}@example.org", f"r{n}@example.net", a))
            except Exception:
                return  # the daemon died under us: that is the point

        threads = [threading.Thread(target=load, args=(n,)) for n in range(4)]
        for th in threads:
            th.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with lock:
                if len(acked) >= 400:
                    break
            time.sleep(0.05)
        os.kill(d.pid, signal.SIGKILL)
        d.proc.wait()
        stop.set()
        for th in threads:
            th.join(30)
        with lock:
            got = list(acked)
        t.check(len(got) >= 100, f"only {len(got)} answers before the kill")
        db = sqlite3.connect(os.path.join(data, "greylist.sqlite"))
        rows = set(db.execute("SELECT sender, recipient FROM triplets"))
        db.close()
        missing = [(s, r) for s, r, a in got if (s, r) not in rows]
        t.eq(missing, [], f"acknowledged decisions missing after kill -9 ({len(got)} acknowledged)")
        t.check(all(a.startswith("DEFER_IF_PERMIT") for _, _, a in got), "all new triplets were deferred")
        d.proc = None  # already reaped; nothing to stop


@t.test
def locked_database_never_accepts(k):
    with policy(k) as d:
        c = d.client()
        t.check(ask(c, at=BASE).startswith("DEFER_IF_PERMIT"), "greylisted")
        db = sqlite3.connect(os.path.join(d.tmp, "var", "greylist.sqlite"), isolation_level=None, timeout=1)
        db.execute("BEGIN EXCLUSIVE")
        try:
            # This retry would pass; with the database locked it must not.
            a = ask(c, at=BASE + 301)
            t.eq(a, None, "no reply, the connection closed (Postfix then answers 451 4.3.5)")
            t.check(d.wait_log("is locked by another process"), "a clear log line")
        finally:
            db.execute("ROLLBACK")
            db.close()
        c = d.client()
        t.check(ask(c, at=BASE + 302).startswith("PREPEND"), "works again once unlocked")


def pass_then_lock(k, *args):
    """A triplet passed at the real clock (--delay 1), then the database locked:
    the next ask's action, or None when the server closed without one."""
    with policy(k, "--delay", "1", *args) as d:
        c = d.client()
        t.check(ask(c).startswith("DEFER_IF_PERMIT"), "greylisted")
        time.sleep(1.2)  # past the one-second delay; the clock only moves on
        t.check(ask(c).startswith("PREPEND"), "the first pass")
        db = sqlite3.connect(os.path.join(d.tmp, "var", "greylist.sqlite"), isolation_level=None, timeout=1)
        db.execute("BEGIN EXCLUSIVE")
        try:
            return ask(c)
        finally:
            db.execute("ROLLBACK")
            db.close()


@t.test
def pass_memory_answers_a_known_pass_and_can_be_turned_off(k):
    # Within its 60 s the memory answers the pass without the (locked) database.
    t.eq(pass_then_lock(k), "DUNNO", "a known pass, answered from the pass memory")
    # --pass-memory 0: every request goes to the database, which is locked: no answer.
    t.eq(pass_then_lock(k, "--pass-memory", "0"), None, "memory off: the locked store answers nothing")
    for bad in ("2h", "-5", "soon"):
        r = harness.run([k, "policy", "--bind", "127.0.0.1", "--port", "0", "--pass-memory", bad], timeout=60)
        err = r.stderr.decode(errors="replace")
        t.check(r.returncode != 0 and "pass-memory" in err, f"--pass-memory {bad}: refused ({r.returncode}, {err!r})")


@t.test
def corrupt_database_is_a_clear_error(k):
    d = policy(k, start=False, expect_servers=0)
    try:
        os.makedirs(os.path.join(d.tmp, "var"))
        with open(os.path.join(d.tmp, "var", "greylist.sqlite"), "wb") as f:
            f.write(b"not a database at all " * 1000)
        d.start()
        code = d.wait(60)
        t.eq(code, 1, "exits 1")
        t.check("corrupt" in d.stderr_text(), d.stderr_text())
    finally:
        d.cleanup()


@t.test
def unix_socket(k):
    d = harness.Daemon(k, "policy", expect_servers=0, start=False)
    path = os.path.join(d.tmp, "policy.sock")
    d.argv += ["--unix", path, "--test-hooks"]  # the test steps time with policy_test_time
    with d:
        d.start()
        t.check(d.wait_log("listening on unix:"), "listening line")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(path)
        out = []
        for at in (BASE, BASE + 301, BASE + 302):
            s.sendall(request(at=at))
            buf = b""
            while not buf.endswith(b"\n\n"):
                chunk = s.recv(4096)
                t.check(chunk, "reply before close")
                buf += chunk
            out.append(buf.decode())
        s.close()
        t.check(out[0].startswith("action=DEFER_IF_PERMIT"), out[0])
        t.check(out[1].startswith("action=PREPEND X-Greylist"), out[1])
        t.eq(out[2], "action=DUNNO\n\n", "pass memory")
    t.check(not os.path.exists(path), "socket file removed on stop")


@t.test
def sighup_reloads_whitelists(k):
    d = policy(k, start=False)
    clients = os.path.join(d.tmp, "whitelist_clients")
    rcpts = os.path.join(d.tmp, "whitelist_recipients")
    with open(clients, "w") as f:
        f.write("# postgrey format\n192.0.2.0/24\n")
    with open(rcpts, "w") as f:
        f.write("open@\n")
    d.argv += ["--whitelist-clients", clients, "--whitelist-recipients", rcpts]
    with d:
        d.start()
        c = d.client()
        t.eq(ask(c, client="192.0.2.55", at=BASE), "DUNNO", "listed network")
        t.eq(ask(c, rcpt="open@example.net", at=BASE), "DUNNO", "listed recipient")
        t.check(ask(c, client="198.51.100.7", at=BASE).startswith("DEFER"), "not listed")
        with open(clients, "a") as f:
            f.write("198.51.100\n")  # a partial address: the /24
        d.signal(signal.SIGHUP)
        t.check(d.wait_log("whitelists reloaded"), "reloaded")
        t.eq(ask(c, client="198.51.100.7", at=BASE + 1), "DUNNO", "listed after SIGHUP")


t.main()
