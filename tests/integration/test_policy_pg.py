#!/usr/bin/env python3
"""`kamaelia policy --store postgresql://...`: two policy servers (two MX
hosts) on one throwaway PostgreSQL 15 cluster started here (initdb as an
unprivileged user, a free loopback port, stopped by pid).

A triplet first seen at MX A passes at MX B after the delay; the database
down gives no reply (Postfix answers 451 4.3.5), never a permit, and the
server uses it again once it is back; `grey-db copy --to postgresql://`
moves a SQLite greylist to PostgreSQL and `grey-db stats --store` reads it;
two servers of one daemon naming different stores is a start-up error, and
so is a bad connection pool size (`?pool=0`: exit 2); the
password never shows in the logs; the console's /healthz answers 503 with the
reason while the database is down and 200 again once it is back, with no mail
going through (the database thread's idle probe).
"""

import os
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from engines import Postgres, postgres_available  # noqa: E402

t = harness.Tests("policy_pg")

BASE = 1_800_000_000  # policy_test_time: the policy tests' clock


def ask(c, client="203.0.114.7", sender="a@example.org", rcpt="u@example.net", at=None):
    """One policy request at RCPT time: the action, or None if the server closed."""
    lines = ["request=smtpd_access_policy", "protocol_state=RCPT", "protocol_name=ESMTP",
             f"client_address={client}", "client_name=unknown", "helo_name=mx.example.org",
             f"sender={sender}", f"recipient={rcpt}", "instance=i1"]
    if at is not None:
        lines.append(f"policy_test_time={at}")
    c.send(("\n".join(lines) + "\n\n").encode())
    try:
        reply = c.read_until(b"\n\n")
    except harness.Closed:
        return None
    return reply[len(b"action="):-2].decode()


def policy(k, *args, data_dir=None):
    argv = ["--bind", "127.0.0.1", "--port", "0", "--test-hooks"]  # the tests step time with policy_test_time
    if data_dir:
        return harness.Daemon(k, "policy", *argv, "--data-dir", data_dir, *args, raw=True)
    return harness.Daemon(k, "policy", *argv, *args)


@t.test
def two_mx_hosts_one_database(k):
    if not postgres_available(t):
        return
    with Postgres() as pg:
        # A password in the URL (trust auth ignores it): it must never be logged.
        url = pg.url(password="pw-not-in-logs")
        with policy(k, "--store", url) as a, policy(k, "--store", url) as b:
            ca, cb = a.client(), b.client()
            t.check(ask(ca, at=BASE).startswith("DEFER_IF_PERMIT"), "first seen at MX A: greylisted")
            t.check(ask(cb, at=BASE + 60).startswith("DEFER_IF_PERMIT"), "at MX B before the delay: still greylisted")
            a2 = ask(cb, at=BASE + 301)
            t.check(a2 is not None and a2.startswith("PREPEND X-Greylist: delayed 301"), f"passes at MX B: {a2}")
            t.eq(ask(ca, at=BASE + 400), "DUNNO", "and then at MX A too")
            # The database goes down: no permit, no reply (Postfix: 451 4.3.5).
            pg.stop()
            t.eq(ask(ca, sender="new@example.org", at=BASE + 500), None, "database down: the connection closes")
            pg.start()
            deadline = time.monotonic() + harness.IO_TIMEOUT
            answer = None
            while time.monotonic() < deadline and answer is None:
                c = a.client()
                answer = ask(c, sender="new@example.org", at=BASE + 600)
                c.close()
                if answer is None:
                    time.sleep(0.5)
            t.check(answer is not None and answer.startswith("DEFER_IF_PERMIT"), f"used again after a restart: {answer}")
            ca.close()
            cb.close()
            for d in (a, b):
                t.check("pw-not-in-logs" not in d.stderr_text(), "the password is not in the log")


@t.test
def healthz_follows_the_database(k):
    if not postgres_available(t):
        return
    with Postgres() as pg:
        url = pg.url(password="pw-not-in-logs")
        with harness.Daemon(k, "policy", "--bind", "127.0.0.1", "--port", "0", "--store", url, "--console", "0",
                            expect_servers=2) as d:
            _, cport = d.address("console")
            # No mail goes through: the database thread's idle probe notices.
            harness.check_healthz_follows(t, cport, "the database", pg.stop, pg.start,
                                          ["greylist store", str(pg.port)], ["pw-not-in-logs"])


@t.test
def grey_db_copy_to_postgresql(k):
    if not postgres_available(t):
        return
    with Postgres() as pg:
        tmp = tempfile.mkdtemp(prefix="kamaelia-it-greycopy-")
        try:
            data = os.path.join(tmp, "var")
            with policy(k, data_dir=data) as d:  # a SQLite greylist with one triplet
                c = d.client()
                t.check(ask(c, at=BASE).startswith("DEFER_IF_PERMIT"), "greylisted in SQLite")
                c.close()
            r = harness.run([k, "grey-db", "copy", "--data-dir", data, "--to", pg.url()])
            t.eq(r.returncode, 0, "copy: " + r.stdout.decode() + r.stderr.decode())
            t.check(b"copied 1 triplets" in r.stdout, r.stdout.decode())
            r = harness.run([k, "grey-db", "stats", "--store", pg.url()])
            t.check(r.returncode == 0 and b"triplets            1" in r.stdout, r.stdout.decode() + r.stderr.decode())
            # A server on the copied store knows the triplet: it passes after the delay.
            with policy(k, "--store", pg.url()) as d:
                c = d.client()
                a = ask(c, at=BASE + 301)
                t.check(a is not None and a.startswith("PREPEND"), f"the copied triplet passes: {a}")
                c.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


@t.test
def different_stores_in_one_daemon_refused(k):
    tmp = tempfile.mkdtemp(prefix="kamaelia-it-greyconf-")
    try:
        cfg = os.path.join(tmp, "k.conf")
        with open(cfg, "w") as f:
            f.write(f"[grey]\nport = 0\nbind = 127.0.0.1\nstore = {tmp}/one.sqlite\nallowed-domain = example.net\n"
                    f"[policy]\nport = 0\nbind = 127.0.0.1\nstore = {tmp}/two.sqlite\n"
                    "[chat]\nport = 0\nbind = 127.0.0.1\n[greeter]\nport = 0\nbind = 127.0.0.1\n"
                    "[bbs]\nport = 0\nbind = 127.0.0.1\n")
        d = harness.Daemon(k, "all", "--config", cfg, "--data-dir", os.path.join(tmp, "var"), raw=True, expect_servers=0)
        t.check(d.wait() not in (0, None), "refused at start-up")
        t.check("differs from" in d.stderr_text(), d.tail())
        d.cleanup()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@t.test
def bad_pool_sizes_refused(k):
    """`?pool=N` outside 1..16 (or not a number, or twice) stops the daemon
    at start-up with exit status 2 and a message naming it; no database is
    needed to see it (nothing listens on port 1)."""
    tmp = tempfile.mkdtemp(prefix="kamaelia-it-pool-")
    try:
        for server in ("policy", "bbs"):
            for bad in ("0", "17", "x", "", "2&pool=3"):
                url = f"postgresql://kamaelia:secret-pw@127.0.0.1:1/g?pool={bad}"
                d = harness.Daemon(k, server, "--bind", "127.0.0.1", "--port", "0", "--data-dir",
                                   os.path.join(tmp, "var"), "--store", url, raw=True, expect_servers=0)
                t.eq(d.wait(), 2, f"{server} pool={bad!r}: " + d.tail())
                t.check("pool" in d.stderr_text(), d.tail())
                t.check("secret-pw" not in d.stderr_text(), "no password in the message")
                d.cleanup()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


t.main()
