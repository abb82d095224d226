#!/usr/bin/env python3
"""`kamaelia relay --source ...`: the streaming splitter.

A real source (a FIFO through file:PATH, and a TCP producer through
tcp://HOST:PORT) relayed to 100 clients, one of which never reads: every
reading client gets the whole stream, byte for byte, and then a clean close
when the source ends; the one that does not read is cut off and never stalls
the source or the others. Clients subscribe before the stream starts (the
test waits for kamaelia_backplane_subscribers on the console's /metrics).
"""

import hashlib
import os
import selectors
import socket
import sys
import tempfile
import threading
import time
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon  # noqa: E402

t = harness.Tests("relay")
STREAM_BYTES = 16 * 1024 * 1024  # past what a non-reader can hold: kernel 4 MiB, adapter inbox 256 chunks, queue 16
# The source is a live stream (a radio, a camera): it comes at a steady rate,
# here 64 KiB every 30 ms, so that 99 Python readers on a loaded machine keep
# up; the one that does not read falls behind by megabytes and is cut off.
PACE_S = 0.03


def payload():
    block = bytes(range(256)) * 256  # 64 KiB
    n = STREAM_BYTES // len(block)
    return [block[i % 251:] + block[:i % 251] for i in range(n)]


def subscribers(cport):
    with urllib.request.urlopen(f"http://127.0.0.1:{cport}/metrics", timeout=harness.IO_TIMEOUT) as r:
        for line in r.read().decode().splitlines():
            if line.startswith('kamaelia_backplane_subscribers{backplane="RELAY"}'):
                return int(float(line.split()[-1]))
    return -1


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise harness.TestFailure(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def connect_clients(addr, n):
    readers = [socket.create_connection(addr, timeout=harness.IO_TIMEOUT) for _ in range(n - 1)]
    lazy = socket.socket()
    lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    lazy.connect(addr)
    return readers, lazy


def read_all(readers, timeout):
    """Reads every client to its end; returns [(bytes, sha256, clean_close)]."""
    sel = selectors.DefaultSelector()
    state = {}
    for s in readers:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        state[s] = [0, hashlib.sha256(), False]
    deadline = time.monotonic() + timeout
    open_ = len(readers)
    while open_ and time.monotonic() < deadline:
        for key, _ in sel.select(1.0):
            s = key.fileobj
            try:
                data = s.recv(1 << 20)
            except (ConnectionResetError, BlockingIOError):
                data = None
            if data:
                state[s][0] += len(data)
                state[s][1].update(data)
                continue
            if data is None:
                continue
            state[s][2] = True  # EOF: the relay closed it cleanly
            sel.unregister(s)
            open_ -= 1
    return [(st[0], st[1].hexdigest(), st[2]) for st in state.values()]


def check_relay(d, cport, feed):
    addr = d.address("relay")
    readers, lazy = connect_clients(addr, 100)
    wait_until(lambda: subscribers(cport) == 100, 60, "100 subscribers")
    blocks = payload()
    want = hashlib.sha256(b"".join(blocks)).hexdigest()
    fed = threading.Event()
    result = {}

    def run():
        t0 = time.monotonic()
        feed(blocks)
        result["feed_s"] = time.monotonic() - t0
        fed.set()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    got = read_all(readers, 300)
    th.join(120)
    t.check(fed.is_set(), "the source was never stalled (all of it was written)")
    full = [g for g in got if g[0] == len(b"".join(blocks))]
    t.eq(len(full), 99, f"all 99 reading clients got the whole stream ({[g[0] for g in got if g not in full][:5]})")
    t.check(all(g[1] == want for g in full), "byte for byte")
    t.check(all(g[2] for g in got), "every reading client was closed cleanly at the end of the source")
    # The one that never read was cut off: it holds far less than the stream.
    lazy.setblocking(False)
    n = 0
    lazy.settimeout(harness.IO_TIMEOUT)
    try:
        while True:
            c = lazy.recv(1 << 20)
            if not c:
                break
            n += len(c)
    except (ConnectionResetError, socket.timeout):
        pass
    t.check(n < STREAM_BYTES, f"the non-reading client was cut off ({n} of {STREAM_BYTES} bytes)")
    for s in readers:
        s.close()
    lazy.close()
    # The source ended: the relay stops serving and the daemon exits by itself... unless the
    # console keeps it up; either way a SIGTERM ends it cleanly.
    return result


@t.test
def relays_a_fifo_to_100_clients(k):
    harness.raise_nofile()
    tmp = tempfile.mkdtemp(prefix="kamaelia-relay-")
    fifo = os.path.join(tmp, "stream")
    os.mkfifo(fifo)
    with Daemon(k, "relay", "--source", f"file:{fifo}", "--bind", "127.0.0.1", "--port", "0", "--console", "0",
                expect_servers=2) as d:
        _, cport = d.address("console")

        def feed(blocks):
            with open(fifo, "wb") as f:
                for b in blocks:
                    f.write(b)
                    f.flush()
                    time.sleep(PACE_S)

        r = check_relay(d, cport, feed)
        print(f"  fifo source: {STREAM_BYTES >> 20} MiB fed in {r.get('feed_s', 0):.2f} s")
        t.eq(d.stop(), 0, "clean exit")


@t.test
def relays_a_tcp_producer_to_100_clients(k):
    harness.raise_nofile()
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    port = lsock.getsockname()[1]
    with Daemon(k, "relay", "--source", f"tcp://127.0.0.1:{port}", "--bind", "127.0.0.1", "--port", "0",
                "--console", "0", expect_servers=2) as d:
        _, cport = d.address("console")
        lsock.settimeout(harness.IO_TIMEOUT)
        prod, _ = lsock.accept()

        def feed(blocks):
            for b in blocks:
                prod.sendall(b)
                time.sleep(PACE_S)
            prod.close()

        check_relay(d, cport, feed)
        t.eq(d.stop(), 0, "clean exit")
    lsock.close()


@t.test
def bad_sources_fail_clearly(k):
    for src, what in (("udp://x:1", "--source must be"), ("tcp://nohost", "tcp://HOST:PORT"),
                      ("file:/nonexistent/x", "cannot open")):
        d = Daemon(k, "relay", "--source", src, "--port", "0", expect_servers=0)
        code = d.wait()
        t.eq(code, 2, f"{src}: exit 2")
        t.check(what in d.log_text(), f"{src}: says why ({d.log_text()[-200:]!r})")
        d.cleanup()
    d = Daemon(k, "relay", "--port", "0", expect_servers=0)
    t.eq(d.wait(), 2, "no --source: exit 2")
    t.check("--source" in d.log_text(), "no --source: says so")
    d.cleanup()


t.main()
