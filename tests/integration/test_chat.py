#!/usr/bin/env python3
"""`kamaelia chat` with a few real clients (Python sockets).

Every line a client says reaches every other client as "ADDR:PORT says
LINE", ended the way the receiving client ends its own lines; lines from one
sender arrive in order; late joiners hear only what is said after they join;
a client that leaves (cleanly, or with a reset, or by breaking the protocol)
does not disturb the others.
"""

import os
import socket
import struct
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Closed, Daemon, chat_line, chat_sync, wait_readable_all  # noqa: E402

t = harness.Tests("chat")


def lines_of(c, sender_name: bytes | None = None):
    """The complete lines in c.buf (said by `sender_name`, if given); consumes every complete line."""
    out = []
    while b"\n" in c.buf:
        i = c.buf.index(b"\n")
        line, c.buf = c.buf[:i + 1], c.buf[i + 1:]
        if sender_name is None or line.startswith(sender_name + b" says "):
            out.append(line)
    return out


def read_said(c, sender, text, ending=b"\r\n"):
    """Reads lines until `sender` said `text`; returns the lines skipped before it."""
    want = chat_line(sender, text, ending)
    skipped = []
    while True:
        line = c.read_line()
        if line == want:
            return skipped
        skipped.append(line)


@t.test
def three_clients_chat(k):
    with Daemon(k, "chat") as d:
        a, b, c = d.client(), d.client(), d.client()
        try:
            chat_sync([a, b, c])
            echoes = 0
            for speaker, text in ((a, "hello from A"), (b, "B here, hi A"), (c, "and C")):
                speaker.send_line(text)
                for listener in (a, b, c):
                    if listener is speaker:
                        continue
                    skipped = read_said(listener, speaker, text)
                    own = [s for s in skipped if s.startswith(listener.name.encode() + b" says ")]
                    echoes += len(own)
                    others = [s for s in skipped if s not in own]
                    t.check(not others, f"{listener.name} heard only {text!r} (also {others!r})")
            # Every *other* client: a sender does not hear its own line back.
            t.eq(echoes, 0, "lines a sender heard back from itself")
        finally:
            harness.close_all([a, b, c])


@t.test
def each_senders_lines_arrive_in_order(k):
    with Daemon(k, "chat") as d:
        clients = [d.client() for _ in range(4)]
        try:
            chat_sync(clients)
            senders = clients[:3]
            n = 200  # each sender's burst fits the documented per-subscriber bound (256)
            for s in senders:
                s.send(b"".join(b"msg %d from me\r\n" % i for i in range(n)))
            names = {s.name.encode(): s for s in senders}
            seen = {(id(r), nm): [] for r in clients for nm in names}

            def got_all(r):
                for line in lines_of(r):
                    for nm in names:
                        if line.startswith(nm + b" says msg "):
                            seen[(id(r), nm)].append(int(line.split()[3]))
                return all(len(seen[(id(r), nm)]) >= n for nm in names if names[nm] is not r)

            left = wait_readable_all(clients, got_all, timeout=60)
            t.check(not left, f"{len(left)} clients did not hear every line")
            for r in clients:
                for nm, s in names.items():
                    if s is r:
                        continue
                    got = seen[(id(r), nm)]
                    t.check(got == list(range(n)),
                            f"{r.name} heard {nm.decode()}'s {n} lines in order, complete "
                            f"(got {len(got)}: {got[:5]}...{got[-5:]})")
        finally:
            harness.close_all(clients)


@t.test
def a_long_paste_reaches_every_reader(k):
    # One client pastes 2,000 lines at once (about 60 KB) while everyone reads:
    # nobody is slow, so nobody should lose a line.
    with Daemon(k, "chat") as d:
        clients = [d.client() for _ in range(3)]
        try:
            chat_sync(clients)
            paster = clients[0]
            n = 2000
            paster.send(b"".join(b"paste line %05d of the long paste\r\n" % i for i in range(n)))
            me = paster.name.encode()
            got = {id(r): [] for r in clients}

            def done(r):
                for line in lines_of(r, me):
                    got[id(r)].append(int(line.split()[4]))
                return len(got[id(r)]) >= n or (got[id(r)] and got[id(r)][-1] == n - 1)

            wait_readable_all(clients[1:], done, timeout=60)
            for r in clients[1:]:
                g = got[id(r)]
                t.check(g == list(range(n)),
                        f"{r.name} heard all {n} pasted lines in order (got {len(g)}; "
                        f"missing e.g. {sorted(set(range(n)) - set(g))[:5]})")
            t.note(f"log: {d.log_text().count('dropped')} 'dropped' mentions")
        finally:
            harness.close_all(clients)


@t.test
def replies_use_each_receivers_line_ending(k):
    with Daemon(k, "chat") as d:
        lf, crlf = d.client(), d.client()
        try:
            chat_sync([lf, crlf], sender=crlf)
            lf.send_line("I end lines with LF", ending=b"\n")
            t.eq(crlf.read_line(), chat_line(lf, "I end lines with LF", b"\r\n"), "the CR LF client gets CR LF")
            crlf.send_line("and I with CR LF", ending=b"\r\n")
            skipped = read_said(lf, crlf, "and I with CR LF", ending=b"\n")
            t.check(all(s.endswith(b"\n") and not s.endswith(b"\r\n") for s in skipped),
                    f"the LF client gets LF only: {skipped!r}")
        finally:
            harness.close_all([lf, crlf])


@t.test
def late_joiner_and_leavers(k):
    with Daemon(k, "chat") as d:
        a, b = d.client(), d.client()
        try:
            chat_sync([a, b])
            a.send_line("before C joined")
            read_said(b, a, "before C joined")
            c = d.client()
            chat_sync([a, b, c], sender=b, token="sync2")
            a.send_line("after C joined")
            skipped = read_said(c, a, "after C joined")
            t.check(not any(b"before C joined" in s for s in skipped), "a late joiner misses earlier lines")
            # C resets its connection (SO_LINGER 0), B closes cleanly.
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
            b.close()
            d2 = d.client()
            chat_sync([a, d2], sender=a, token="sync3")
            d2.send_line("the others are gone")
            skipped = read_said(a, d2, "the others are gone")
            t.check(not skipped, f"A hears D after B and C left ({skipped!r})")
            t.check(d.wait_log(r"chat: connection \d+ from .* closed", count=2),
                    "the log records the two closed connections")
            d2.close()
        finally:
            harness.close_all([a, b])


@t.test
def a_client_breaking_the_line_limit_leaves_the_rest_chatting(k):
    with Daemon(k, "chat", "--max-line", "1000") as d:
        a, b, bad = d.client(), d.client(), d.client()
        try:
            chat_sync([a, b, bad])
            bad.send(b"z" * 5000 + b"\r\n")
            try:
                got = bad.read_to_close()
                t.check(b"line too long" in got, f"the offender is told why: {got[-200:]!r}")
            except harness.TestFailure as e:
                t.check(False, f"the offender is disconnected: {e}")
            a.send_line("still here")
            skipped = read_said(b, a, "still here")
            t.check(not any(b"zzzz" in s for s in skipped), "nobody got the over-long line")
        except Closed as e:
            t.check(False, f"unexpected close: {e}")
        finally:
            harness.close_all([a, b, bad])


if __name__ == "__main__":
    t.main()
