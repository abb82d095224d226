#!/usr/bin/env python3
"""Connection limits and the inactivity timeout, against the real daemon.

- A flood of connections past --max-connections: the extra ones are closed
  at once (never served), the existing clients keep being answered, and a
  slot freed by a leaving client is used again.
- --max-per-address: the cap counts per client address (127.0.0.1 vs 127.0.0.2).
- --idle-timeout: a silent client is closed (not before the timeout); a client
  that keeps sending, even bytes of an unfinished line, is not.
"""

import os
import sys
import re
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Client, Daemon, TestFailure, wait_readable_all  # noqa: E402

t = harness.Tests("limits")


def greet(c, text: bytes) -> bytes:
    c.send(text + b"\r\n")
    return c.read_line()


def served(c, timeout=harness.IO_TIMEOUT) -> bool:
    """True if the connection answers a line; False if the server closes it."""
    try:
        c.send(b"are you there\r\n")
        return c.read_line(timeout) == b"hello are you there\r\n"
    except (harness.Closed, OSError):
        return False


@t.test
def flood_past_max_connections(k):
    harness.raise_nofile()
    cap, flood = 50, 300
    with Daemon(k, "greeter", "--max-connections", str(cap)) as d:
        kept = [d.client() for _ in range(cap)]
        extra = []
        try:
            for i, c in enumerate(kept):
                t.require(greet(c, b"k%d" % i) == b"hello k%d\r\n" % i, f"client {i} of {cap} answered")
            # The flood: connect as fast as we can, each says a line.
            for i in range(flood):
                try:
                    c = Client(*d.address(), timeout=60)
                except ConnectionRefusedError:
                    continue  # refused outright: also fine
                extra.append(c)
                try:
                    c.send(b"flood %d\r\n" % i)
                except OSError:
                    pass
            # Every extra connection is closed by the server without a reply.
            left = wait_readable_all(extra, lambda c: c.eof, timeout=120)
            t.check(not left, f"every connection past the cap is closed ({len(left)} of {len(extra)} still open)")
            answered = [c for c in extra if b"hello" in c.buf]
            t.check(not answered, f"no connection past the cap is served ({len(answered)} were)")
            t.require(d.alive(), "daemon alive after the flood")
            # The existing clients are unaffected.
            bad = [i for i, c in enumerate(kept) if not served(c)]
            t.check(not bad, f"existing clients still answered after the flood (not: {bad[:10]})")
            # One condition, not a line per refused connection (a flood must
            # not flood the log): its start names the first one refused.
            t.check(d.wait_log(r"greeter: refusing connections \(connection caps reached\): 127\.0\.0\.1:\d+"),
                    "the log records that connections are refused")
            starts = len(re.findall(r"refusing connections", d.log_text()))
            t.check(starts <= 2, f"refusals are logged as one condition, not each ({starts} lines)")
            # A freed slot is used again (the daemon notices the close, then accepts).
            kept.pop().close()
            deadline = time.monotonic() + 60
            ok = False
            while not ok and time.monotonic() < deadline:
                try:
                    with Client(*d.address()) as c:
                        ok = served(c)
                except OSError:
                    pass
                if not ok:
                    time.sleep(0.2)
            t.check(ok, "after one client leaves, a new one is served")
        finally:
            harness.close_all(kept + extra)


@t.test
def max_per_address(k):
    with Daemon(k, "greeter", "--max-per-address", "2") as d:
        a1, a2 = d.client(source="127.0.0.1"), d.client(source="127.0.0.1")
        try:
            t.check(served(a1) and served(a2), "two clients from 127.0.0.1 are served")
            with d.client(source="127.0.0.1") as a3:
                t.check(not served(a3), "a third from 127.0.0.1 is not")
                t.check(a3.eof or a3.closed_by_server(30), "...it is closed")
            with d.client(source="127.0.0.2") as b1:
                t.check(served(b1), "a client from 127.0.0.2 is served")
            t.check(served(a1) and served(a2), "the first two are still served")
        finally:
            harness.close_all([a1, a2])


@t.test
def inactivity_timeout(k):
    timeout = 3.0
    with Daemon(k, "greeter", "--idle-timeout", str(timeout)) as d:
        silent = d.client()
        t0 = time.monotonic()
        active = d.client()
        trickle = d.client()
        try:
            # `active` says a line every 0.3 s; `trickle` sends one byte of an
            # unfinished line every 0.3 s; for three times the timeout.
            n = 0
            end = time.monotonic() + 3 * timeout
            while time.monotonic() < end:
                t.require(greet(active, b"ping %d" % n) == b"hello ping %d\r\n" % n, f"active client answered ({n})")
                trickle.send(b"x")
                n += 1
                time.sleep(0.3)
            try:
                got = silent.read_to_close(timeout=60)
                elapsed = time.monotonic() - t0
                t.check(elapsed >= timeout * 0.95, f"the silent client is not closed before the timeout "
                                                   f"({elapsed:.2f}s < {timeout}s)")
                t.eq(got, b"", "nothing sent to the silent client")
            except TestFailure as e:
                t.check(False, f"the silent client is closed after --idle-timeout {timeout}: {e}")
            t.check(served(active), "the active client is still open after 3x the timeout")
            trickle.send(b"\r\n")
            t.eq(trickle.read_line(), b"hello " + b"x" * n + b"\r\n", "the trickling client is still open")
            t.check(d.wait_log(r"idle for too long"), "the log says why the silent client went")
            # Once silent, the others go too.
            t0 = time.monotonic()
            t.check(active.closed_by_server(60), "the active client, once silent, is closed too")
        finally:
            harness.close_all([silent, active, trickle])


if __name__ == "__main__":
    t.main()
