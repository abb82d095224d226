#!/usr/bin/env python3
"""`kamaelia bbs --store postgresql://...`: two board daemons (two hosts) on
one throwaway PostgreSQL 15 cluster started here (engines.py).

A user added with `bbs-user --store` and a post made over a telnet-style
connection to daemon A are read by a user of daemon B; PostgreSQL stopped
mid-session makes a post "try again later" (the session goes on, nothing
is acknowledged that was not committed) and a post after the restart
succeeds on the same daemon; `bbs-db copy --to` moves a SQLite board to
PostgreSQL, and `bbs-db stats|export` read both; `kamaelia all --bbs-store` uses it; a newer schema in the
database makes the daemon refuse to start; the password never shows in
the logs.
"""

import json
import os
import re
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from bbs_client import Session, strip_telnet  # noqa: E402
from engines import Postgres, postgres_available  # noqa: E402

t = harness.Tests("bbs_pg")
KDF = "1000"
SECRET = "pw-not-in-logs"


def add_user(k, store, name, password, flag="--store"):
    r = harness.run([k, "bbs-user", "add", name, flag, store, "--kdf-iterations", KDF], input=(password + "\n").encode())
    t.require(r.returncode == 0, f"bbs-user add {name}: {r.stderr.decode(errors='replace')}")
    t.check(SECRET not in (r.stdout + r.stderr).decode(errors="replace"), "bbs-user: the password is not printed")


def board(k, *args, **kw):
    return harness.Daemon(k, "bbs", "--bind", "127.0.0.1", "--port", "0", "--kdf-iterations", KDF, *args, **kw)


def session(d):
    return Session(*d.address())


def posted(out):
    m = re.search(r"Message (\d+) posted", out)
    return m.group(1) if m else None


@t.test
def two_boards_one_database(k):
    if not postgres_available(t):
        return
    with Postgres() as pg:
        url = pg.url(password=SECRET)  # trust auth ignores it; it must never be logged
        add_user(k, url, "harry", "password")
        add_user(k, url, "dick", "secret")
        with board(k, "--store", url) as a, board(k, "--store", url) as b:
            h = session(a)
            out = h.login("harry", "password")
            t.check("Login Successful" in out, f"harry logs in on host A: {out!r}")
            first = posted(h.post("Hello from host A", ["one host", "then another"]))
            t.require(first is not None, "posted on A")

            dk = session(b)
            out = dk.login("dick", "secret")
            t.check("You have 1 message(s) waiting" in out, f"dick on host B is told of it: {out!r}")
            dk.ask("", "messages> ")
            out = dk.ask("", "messages> ")
            t.check(f"message: {first}\r\n" in out and "from: harry\r\n" in out and "one host\r\nthen another\r\n" in out,
                    f"dick reads on B what harry posted on A: {out!r}")
            dk.ask("x", "main> ")

            # PostgreSQL stops mid-session: the post is "try again later", never
            # acknowledged; the board ends that session, the daemon goes on.
            pg.stop()
            h.send("p")
            h.until("subject: ")
            h.send("While the database is down")
            h.until("ends it")
            h.send("lost?")
            h.send(".")
            out = strip_telnet(h.c.read_to_close()).decode("utf-8", "replace")
            t.check("try again later" in out and posted(out) is None, f"database down: try again later: {out!r}")
            t.check(a.alive(), "host A still runs")
            pg.start()
            out = None
            deadline = time.monotonic() + harness.IO_TIMEOUT
            while time.monotonic() < deadline:  # a new session on the same daemon, no restart
                h = session(a)
                try:
                    h.login("harry", "password")
                    out = h.post("After the restart", ["back"])
                    if posted(out):
                        break
                except harness.Closed:
                    pass
                h.close()
                time.sleep(0.5)
            t.check(out is not None and posted(out) is not None, f"host A posts again after the restart: {out!r}")
            out = dk.ask("", "messages> ")  # B's session went on through the outage
            t.check("You have 1 message(s) waiting" in out, f"B sees one new message, not two: {out!r}")
            out = dk.ask("", "messages> ")
            t.check("subject: After the restart" in out, f"and B reads it: {out!r}")
            t.check("While the database is down" not in out, "nothing unacknowledged shows up")
            dk.close()
            h.close()
            for d in (a, b):
                t.check(SECRET not in d.stderr_text(), "the password is not in the log")


def bbs_connections(pg):
    r = pg.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'kamaelia-bbs'")
    t.require(r.returncode == 0, "pg_stat_activity: " + r.stderr.decode(errors="replace"))
    return int(r.stdout.decode().strip())


@t.test
def a_bounded_pool_per_daemon_and_killed_backends(k):
    """Many sessions at once share the daemon's pool of database connections
    (`?pool=3`: three, each batching on a thread of its own); backends killed
    under it cost at most a "try again later", then the board goes on and
    every pooled connection is made again."""
    if not postgres_available(t):
        return
    with Postgres() as pg:
        add_user(k, pg.url(), "harry", "password")
        with board(k, "--store", pg.url() + "?pool=3") as d:
            sessions = [session(d) for _ in range(20)]
            for s in sessions:
                s.login("harry", "password")
            for i, s in enumerate(sessions):  # twenty posts in flight at once
                s.send("p")
                s.until("subject: ")
                s.send(f"post {i}")
                s.until("ends it")
                s.send("x")
            for s in sessions:
                s.send(".")
            peak = bbs_connections(pg)
            outs = [s.until("main> ") for s in sessions]
            t.check(all(posted(o) for o in outs), "twenty concurrent posts acknowledged")
            t.check(peak <= 3 and bbs_connections(pg) == 3, f"three connections for twenty sessions (saw {peak})")
            for s in sessions:
                s.close()
            r = pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'kamaelia-bbs'")
            t.require(r.returncode == 0, "backend killed")
            ok = 0
            for attempt in range(3):  # the first may be told to try again later; then it works
                s = session(d)
                try:
                    s.login("harry", "password")
                    if posted(s.post(f"after the kill {attempt}", ["x"])):
                        ok += 1
                except harness.Closed:
                    pass
                s.close()
            t.check(ok >= 2, f"at most one temporary failure after a killed backend ({ok} of 3 worked)")
            deadline = time.monotonic() + 60  # liveness only: the idle ones come back by their probe
            while bbs_connections(pg) != 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            t.eq(bbs_connections(pg), 3, "and three connections again")


@t.test
def newer_schema_refused(k):
    if not postgres_available(t):
        return
    with Postgres() as pg:
        add_user(k, pg.url(), "harry", "password")
        r = pg.psql("UPDATE kamaelia_schema SET version = 99 WHERE part = 'bbs'")
        t.require(r.returncode == 0, "schema version raised: " + r.stderr.decode(errors="replace"))
        d = board(k, "--store", pg.url(), expect_servers=0)
        t.check(d.wait() not in (0, None), "a daemon that finds a newer schema refuses to start")
        t.check("newer" in d.stderr_text() and "upgrade kamaelia" in d.stderr_text(), d.tail())
        d.cleanup()


@t.test
def copy_a_sqlite_board_then_run_all_on_it(k):
    if not postgres_available(t):
        return
    with Postgres() as pg:
        tmp = tempfile.mkdtemp(prefix="kamaelia-it-bbscopy-")
        try:
            data = os.path.join(tmp, "var")
            add_user(k, data, "harry", "password", flag="--data-dir")
            with board(k, "--data-dir", data, raw=True) as d:  # a SQLite board with one post
                s = session(d)
                s.login("harry", "password")
                t.require(posted(s.post("Written in SQLite", ["moved"])) is not None, "posted in SQLite")
                s.close()
            for run in (1, 2):  # twice: still one board
                r = harness.run([k, "bbs-db", "copy", "--data-dir", data, "--to", pg.url(password=SECRET)])
                t.eq(r.returncode, 0, "copy: " + r.stdout.decode() + r.stderr.decode())
                t.check(b"copied 1 users, 1 messages" in r.stdout and SECRET.encode() not in r.stdout, r.stdout.decode())
            # stats and export read either store; the copy exports the same as its source.
            exports = []
            for where in (["--data-dir", data], ["--store", pg.url()]):
                r = harness.run([k, "bbs-db", "stats", *where])
                out = r.stdout.decode(errors="replace")
                t.eq(r.returncode, 0, "bbs-db stats: " + out + r.stderr.decode(errors="replace"))
                t.check(re.search(r"^users +1$", out, re.M) and re.search(r"^messages +1$", out, re.M), out)
                r = harness.run([k, "bbs-db", "export", *where])
                t.eq(r.returncode, 0, "bbs-db export: " + r.stderr.decode(errors="replace"))
                lines = r.stdout.decode().splitlines()
                t.eq(len(lines), 1, f"one message exported: {lines!r}")
                m = json.loads(lines[0]) if lines else {}
                t.check(m.get("subject") == "Written in SQLite" and "moved" in m.get("__body__", ""), repr(m))
                exports.append(r.stdout)
            t.eq(exports[0], exports[1], "the copied board exports as its source does")
            add_user(k, pg.url(), "dick", "secret")
            cfg = os.path.join(tmp, "k.conf")
            with open(cfg, "w") as f:
                f.write(f"[bbs]\nport = 0\nbind = 127.0.0.1\nkdf-iterations = {KDF}\n[chat]\nport = 0\nbind = 127.0.0.1\n"
                        "[greeter]\nport = 0\nbind = 127.0.0.1\n[grey]\nport = 0\nbind = 127.0.0.1\n"
                        "allowed-domain = example.net\n[policy]\nport = 0\nbind = 127.0.0.1\n")
            with harness.Daemon(k, "all", "--config", cfg, "--data-dir", os.path.join(tmp, "all"),
                                "--bbs-store", pg.url(), raw=True, expect_servers=5) as d:
                s = Session(*d.address("bbs"))
                out = s.login("dick", "secret")
                t.check("You have 1 message(s) waiting" in out, f"kamaelia all --bbs-store: {out!r}")
                s.ask("", "messages> ")
                out = s.ask("", "messages> ")
                t.check("subject: Written in SQLite" in out and "moved" in out, f"the copied post: {out!r}")
                s.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


t.main()
