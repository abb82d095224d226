#!/usr/bin/env python3
"""A chat client that never reads, while the others chat a lot.

One client connects to `kamaelia chat` with a small receive buffer and never
reads. Three readers chat (two of them send ~2 x 20 MB of lines, with a
window so that a reader that keeps up never has more in flight than the
backplane's per-subscriber bound). Checks:
  - the daemon's memory stays bounded (VmRSS, sampled all along): under an
    absolute limit, and over the second half of the traffic it grows by less
    than a quarter of what was said past the non-reader in that half (a
    daemon that buffered for the non-reader would grow by all of it);
  - every reader receives every line of every sender, in order, complete;
  - the non-reader is dropped past the limit: disconnected, or its lines
    dropped (what it reads at the end is a small, in-order part of the
    stream);
  - afterwards the readers still chat.
The daemon runs with a small ASan quarantine (if it is an ASan build) so that
RSS measures the daemon's buffers rather than ASan's recycling of freed blocks.
"""

import os
import select
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon, TestFailure, chat_line, chat_sync  # noqa: E402

t = harness.Tests("slow_reader")

LINE_PAYLOAD = 1000               # bytes of text per line (the limit is 8192)
LINES_PER_SENDER = 20_000         # 2 senders x 20,000 x ~1 KB = ~40 MB said, all of it past the non-reader
WINDOW = 100                      # lines a sender may have unconfirmed (2 x 100 < the subscriber bound 256)
RSS_LIMIT_KB = 200 * 1024         # absolute bound on the daemon (ASan build included)
GROWTH_FRACTION = 0.25            # growth allowed over the second half, as a share of what was said in it
STALL = 60.0                      # seconds without progress that mean the chat has stopped
ASAN_EXTRA = "quarantine_size_mb=4:thread_local_quarantine_size_kb=64"


class Reader(threading.Thread):
    """Reads one client's stream; records, per sender, the sequence numbers heard."""

    def __init__(self, client, sender_names):
        super().__init__(daemon=True)
        self.c = client
        self.names = sender_names
        self.seen = {n: -1 for n in sender_names}   # last sequence number heard, per sender
        self.errors = []
        self.other = []
        self.stop = False
        self.cv = threading.Condition()

    def run(self):
        # The socket is shared with a sender thread: neither changes its
        # blocking mode; both use select + MSG_DONTWAIT.
        sock = self.c.sock
        buf = b""
        prefixes = {n: n + b" says seq " for n in self.names}
        try:
            while not self.stop:
                ready, _, _ = select.select([sock], [], [], 0.5)
                if not ready:
                    continue
                try:
                    data = sock.recv(1 << 20, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                if not data:
                    self.errors.append("the server closed a reader's connection")
                    return
                buf += data
                lines = buf.split(b"\r\n")
                buf = lines.pop()
                changed = False
                for line in lines:
                    for n, p in prefixes.items():
                        if line.startswith(p):
                            seq = int(line[len(p):len(p) + 8])
                            body = line[len(p) + 8:]
                            if seq != self.seen[n] + 1 and len(self.errors) < 10:
                                self.errors.append(f"from {n.decode()}: expected seq {self.seen[n] + 1}, got {seq}")
                            if body != payload(seq) and len(self.errors) < 10:
                                self.errors.append(f"from {n.decode()}: line {seq} mangled")
                            self.seen[n] = seq
                            changed = True
                            break
                    else:
                        self.other.append(line)
                if changed:
                    with self.cv:
                        self.cv.notify_all()
        except OSError as e:
            self.errors.append(f"reader socket error: {e}")
        finally:
            self.c.buf = buf
            with self.cv:
                self.cv.notify_all()


def cpu_seconds(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return f"{(int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK'):.1f}s"
    except OSError:
        return "?"


def send_nb(sock, data: bytes) -> None:
    """sendall without touching the socket's blocking mode (a reader thread shares it)."""
    deadline = time.monotonic() + STALL
    view = memoryview(data)
    while view:
        if time.monotonic() > deadline:
            raise TestFailure(f"the daemon took nothing from a sender for {STALL:.0f}s")
        _, ready, _ = select.select([], [sock], [], 1.0)
        if not ready:
            continue
        try:
            n = sock.send(view, socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue
        view = view[n:]


def payload(seq: int) -> bytes:
    return (b" %08d " % seq) * (LINE_PAYLOAD // 10)


@t.test
def a_client_that_never_reads(k):
    with Daemon(k, "chat", env_extra=ASAN_EXTRA) as d:
        clients = [d.client() for _ in range(3)]
        # The non-reader: a small receive buffer, so the kernel holds little for it.
        lazy = d.client(rcvbuf=4096)
        try:
            chat_sync(clients + [lazy])   # the non-reader's buffer gets the sync lines, then nothing reads it
            senders = clients[:2]
            names = [s.name.encode() for s in senders]
            # A client hears every other client, not itself.
            readers = [Reader(c, [n for n in names if n != c.name.encode()]) for c in clients]
            for r in readers:
                r.start()
            rss0 = d.rss_kb()
            samples = []
            send_errors = []
            progress = [0, 0]

            def sender(idx):
                s = senders[idx]
                try:
                    batch = 20
                    for start in range(0, LINES_PER_SENDER, batch):
                        # Wait until every reader has heard our line start - WINDOW.
                        deadline = time.monotonic() + STALL
                        for r in readers:
                            if names[idx] not in r.seen:
                                continue  # the sender itself
                            with r.cv:
                                ok = r.cv.wait_for(lambda: r.seen[names[idx]] >= start - WINDOW or r.errors or
                                                   not r.is_alive(), timeout=max(0.0, deadline - time.monotonic()))
                            if not ok:
                                raise TestFailure(f"the chat stopped: {STALL:.0f}s after saying line {start - 1}, "
                                                  f"reader {r.c.name} had heard only up to line "
                                                  f"{r.seen[names[idx]]} from sender {idx} "
                                                  f"(daemon CPU {cpu_seconds(d.pid)})")
                            if r.errors or not r.is_alive():
                                return
                        send_nb(s.sock, b"".join(b"seq %08d%s\r\n" % (q, payload(q))
                                                 for q in range(start, min(start + batch, LINES_PER_SENDER))))
                        progress[idx] = start + batch
                except Exception as e:
                    send_errors.append(f"sender {idx}: {e}")

            ths = [threading.Thread(target=sender, args=(i,), daemon=True) for i in range(2)]
            t0 = time.monotonic()
            for th in ths:
                th.start()
            deadline = time.monotonic() + 600
            mid_rss = None
            while any(th.is_alive() for th in ths) and time.monotonic() < deadline:
                time.sleep(0.2)
                rss = d.rss_kb()
                if rss is None:
                    break
                samples.append(rss)
                if mid_rss is None and sum(progress) >= LINES_PER_SENDER:
                    mid_rss = max(samples)
            for th in ths:
                th.join(5)
            t.require(not any(th.is_alive() for th in ths), "the senders finished within 10 minutes")
            # Wait for the readers to hear the last line of each sender.
            for r in readers:
                with r.cv:
                    r.cv.wait_for(lambda: all(v >= LINES_PER_SENDER - 1 for v in r.seen.values()) or r.errors
                                  or not r.is_alive(), timeout=5 if send_errors else STALL)
            elapsed = time.monotonic() - t0
            mb = 2 * LINES_PER_SENDER * (LINE_PAYLOAD + 40) / 1e6
            said = sum(min(p, LINES_PER_SENDER) for p in progress) * (LINE_PAYLOAD + 40) / 1e6
            t.note(f"{said:.0f} of {mb:.0f} MB said in {elapsed:.1f}s (daemon CPU {cpu_seconds(d.pid)}); daemon RSS {rss0} KiB at the start, "
                   f"{mid_rss} KiB at half-way, max {max(samples) if samples else None} KiB")
            t.check(not send_errors, f"senders: {send_errors}")
            for i, r in enumerate(readers):
                t.check(not r.errors, f"reader {i} ({r.c.name}): {r.errors}")
                t.check(all(v == LINES_PER_SENDER - 1 for v in r.seen.values()),
                        f"reader {i} heard every line of both senders (last seq heard: {list(r.seen.values())})")
            t.require(d.alive(), "daemon alive")
            peak = max(samples) if samples else 0
            t.check(peak < RSS_LIMIT_KB, f"daemon RSS stays under {RSS_LIMIT_KB // 1024} MiB (peak {peak} KiB)")
            if mid_rss is not None:
                allowed = GROWTH_FRACTION * mb / 2 * 1e6 / 1024
                t.check(peak - mid_rss < allowed,
                        f"daemon RSS does not grow with the traffic past the non-reader "
                        f"(half-way {mid_rss} KiB, peak {peak} KiB; {mb / 2:.0f} MB said in between, "
                        f"growth allowed {allowed:.0f} KiB)")

            # The rest keep chatting.
            for r in readers:
                r.stop = True
            for r in readers:
                r.join(5)
            chat_sync(clients, token="after", timeout=STALL)
            clients[2].send_line("the lazy one did not stop us")
            for c in clients[:2]:
                line = c.read_line()
                t.eq(line, chat_line(clients[2], "the lazy one did not stop us"), "readers still chat")

            # Now look at what the non-reader got: it must have been dropped past the
            # limit, either cut off or its lines dropped; what it has is in order.
            lazy.sock.settimeout(None)
            try:
                # While we read it now, it may also start getting new lines: stop at
                # the first 'after' line or when the stream pauses.
                got = bytearray()
                closed = False
                lazy.sock.settimeout(5)
                while len(got) < 200 << 20:
                    try:
                        data = lazy.sock.recv(1 << 20)
                    except socket.timeout:
                        break
                    except ConnectionResetError:
                        closed = True
                        break
                    if not data:
                        closed = True
                        break
                    got += data
            finally:
                lazy.close()
            lines = bytes(got).split(b"\r\n")
            counts = {n: [] for n in names}
            for line in lines:
                for n in names:
                    p = n + b" says seq "
                    if line.startswith(p):
                        counts[n].append(int(line[len(p):len(p) + 8]))
            heard = sum(len(v) for v in counts.values())
            total = 2 * LINES_PER_SENDER
            t.note(f"the non-reader {'was disconnected' if closed else 'stayed connected'} and then read "
                   f"{len(got)} bytes: {heard} of the {total} lines")
            t.check(closed or heard < total, "the non-reader was dropped past the limit (cut off or lines dropped)")
            for n, seqs in counts.items():
                t.check(seqs == sorted(seqs) and len(seqs) == len(set(seqs)),
                        f"what the non-reader heard from {n.decode()} is in order, without repeats")
            if d.log_text().count("dropped") == 0 and not closed:
                t.note("the log does not mention what was dropped for the non-reader")
        finally:
            harness.close_all(clients + [lazy])


if __name__ == "__main__":
    t.main()
