#!/usr/bin/env python3
"""1,000 concurrent chat clients all receive a message.

This process raises its RLIMIT_NOFILE to the hard limit (the daemon inherits
it and raises its own), opens 1,000 connections to one `kamaelia chat`, waits
until every one of them is subscribed (see harness.chat_sync), then checks
that one line, and then ten lines from ten different clients, reach all
1,000 clients, each sender's text intact.
"""

import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon, chat_line, chat_sync, wait_readable_all  # noqa: E402

t = harness.Tests("chat_1000")
N = 1000


@t.test
def thousand_clients_all_receive(k):
    limit = harness.raise_nofile()
    t.require(limit >= N + 100, f"RLIMIT_NOFILE {limit} allows {N} clients")
    with Daemon(k, "chat") as d:
        clients = []
        try:
            t0 = time.monotonic()
            for i in range(N):
                clients.append(d.client(timeout=60))
            t.note(f"{N} connected in {time.monotonic() - t0:.1f}s")
            t.require(d.alive(), "daemon alive with 1,000 connections")
            t0 = time.monotonic()
            chat_sync(clients, timeout=180)
            t.note(f"all {N} subscribed in {time.monotonic() - t0:.1f}s")

            # One message to everyone.
            speaker = clients[N // 2]
            speaker.send_line("a message for all 1000")
            want = chat_line(speaker, "a message for all 1000")
            others = [c for c in clients if c is not speaker]
            left = wait_readable_all(others, lambda c: want in c.buf, timeout=120)
            t.check(want not in speaker.buf, "the speaker did not hear its own line")
            t.check(not left, f"every other client received the message ({len(left)} did not: "
                              f"e.g. {[c.buf[-120:] for c in left[:3]]})")

            # Ten speakers at once: everyone receives all ten lines.
            speakers = clients[::N // 10][:10]
            for i, s in enumerate(speakers):
                s.send_line(f"line {i} from speaker {i}")
            wants = [chat_line(s, f"line {i} from speaker {i}") for i, s in enumerate(speakers)]
            def wants_of(c):
                return [w for w, s in zip(wants, speakers) if s is not c]

            left = wait_readable_all(clients, lambda c: all(w in c.buf for w in wants_of(c)), timeout=120)
            t.check(not left, f"every client received the ten lines of the others ({len(left)} did not; e.g. "
                              f"missing {[[w for w in wants_of(c) if w not in c.buf][:2] for c in left[:2]]})")
            # Nothing mangled: every complete line a client got is one of the sent ones.
            allowed = set(wants)
            bad = []
            for c in clients:
                for line in c.buf.split(b"\n")[:-1]:
                    if line + b"\n" not in allowed and line + b"\n" != want:
                        bad.append(line)
            t.check(not bad, f"no unexpected or mangled lines ({len(bad)}: {bad[:3]})")
            t.require(d.alive(), "daemon alive")
            t.check("refused" not in d.log_text(), "no connection refused")
        finally:
            harness.close_all(clients)
        # All 1,000 leave; the daemon notices every close and still serves.
        t.check(d.wait_log(r"chat: connection \d+ from .* closed", count=N, timeout=120),
                "the daemon reaped all 1,000 connections")
        with d.client() as a, d.client() as b:
            chat_sync([a, b])
            a.send_line("after the crowd")
            t.check(chat_line(a, "after the crowd") in b.read_line(), "chat works after the crowd left")


if __name__ == "__main__":
    t.main()
