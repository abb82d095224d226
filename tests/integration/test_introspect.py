#!/usr/bin/env python3
"""`--introspect PORT` and `kamaelia graph --connect HOST:PORT`.

The daemon streams its live component graph in the original Introspector's
text protocol (DEL ALL, ADD NODE, ADD LINK, DEL NODE, DEL LINK) plus STAT
counter lines and a FRAME line closing each update; connections appear and
disappear in the stream as they open and close; `kamaelia graph` turns the
stream into Graphviz dot, and says clearly when a port is not an
introspection stream.
"""

# With --threads 2 the graph has every scheduler's components, each with its
# scheduler (STAT ... scheduler=K; a cluster per scheduler in dot); one case
# keeps --threads 1, whose dot has no scheduler clusters.

import os
import re
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon  # noqa: E402

t = harness.Tests("introspect")


class Stream:
    """Reads the introspection stream a frame at a time."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=harness.IO_TIMEOUT)
        self.buf = b""

    def frame(self) -> list[str]:
        while b"\nFRAME " not in b"\n" + self.buf or not self._frame_complete():
            chunk = self.s.recv(65536)
            if not chunk:
                raise harness.TestFailure("the introspection stream ended")
            self.buf += chunk
        i = self.buf.index(b"FRAME ") if self.buf.startswith(b"FRAME ") else self.buf.index(b"\nFRAME ") + 1
        j = self.buf.index(b"\n", i)
        text, self.buf = self.buf[:j + 1], self.buf[j + 1:]
        return text.decode().splitlines()

    def _frame_complete(self) -> bool:
        i = (b"\n" + self.buf).index(b"\nFRAME ")
        return self.buf.find(b"\n", i) >= 0

    def frame_where(self, pred, what, timeout=60.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            f = self.frame()
            if pred(f):
                return f
        raise harness.TestFailure(f"no frame with {what} within {timeout}s")

    def close(self):
        self.s.close()


def csa_ids(lines):
    return {m.group(1) for m in (re.match(r'ADD NODE "(\d+)" "connected_socket_adapter', l) for l in lines) if m}


@t.test
def the_stream_shows_connections_come_and_go(k):
    with Daemon(k, "greeter", "--threads", "2", "--introspect", "0", expect_servers=2) as d:
        st = Stream(d.address("introspect")[1])
        try:
            first = st.frame()
            t.eq(first[0], "DEL ALL", "the first update starts with DEL ALL")
            t.check(any(l.startswith('ADD NODE "') and l.endswith(" component") for l in first), "component nodes")
            t.check(any(l.startswith("ADD LINK ") for l in first), "links")
            t.check(any(re.match(r'STAT "\d+" parent=\d+ state=\w+ failed=[01] wakeups=\d+ sent=\d+ cpu_ns=\d+ '
                                 r'scheduler=0$', l) for l in first), "component counters, with the scheduler")
            t.check(any(re.match(r'STAT "\d+" .* scheduler=1$', l) for l in first),
                    "the first picture has scheduler 1's components too (the greeter's second shard)")
            t.check(any(re.match(r"STAT \"\(\d+, 'i', 'inbox'\)\" depth=\d+ limit=\d+ delivered=\d+ parked=\d+$", l)
                        for l in first), "inbox counters")
            t.check(re.match(r"FRAME \d+$", first[-1]) is not None, "a FRAME line closes it")
            known = csa_ids(first)  # the introspection connection itself
            c = d.client("greeter")
            c.send_line("bob")
            t.eq(c.read_line(), b"hello bob\r\n", "the greeter answers")
            added = st.frame_where(lambda f: csa_ids(f) - known, "the new connection's adapter")
            # Profiling is on with --introspect: the adapter that answered has used CPU time.
            later = st.frame_where(lambda f: any(re.match(r'STAT "\d+" .* cpu_ns=[1-9]\d* scheduler=\d+$', l) for l in f),
                                   "a component with CPU time")
            t.check(bool(later), "CPU time is measured per component")
            new = csa_ids(added) - known
            t.eq(len(new), 1, f"one new adapter ({new})")
            csa = new.pop()
            c.close()
            st.frame_where(lambda f: f'DEL NODE "{csa}"' in f, "the closed connection's adapter deleted")
        finally:
            st.close()


@t.test
def graph_prints_a_cluster_per_scheduler(k):
    with Daemon(k, "greeter", "--threads", "2", "--introspect", "0", expect_servers=2) as d:
        port = d.address("introspect")[1]
        r = harness.run([k, "graph", "--connect", f"127.0.0.1:{port}"])
        t.eq(r.returncode, 0, f"kamaelia graph exits 0 (stderr {r.stderr[-300:]!r})")
        out = r.stdout.decode()
        for s in (0, 1):
            t.check(f"subgraph cluster_s{s} {{" in out and f'label="scheduler {s}"' in out, f"a cluster for scheduler {s}")
        # Each scheduler runs a shard of the greeter: a server_core in each cluster.
        s1 = out.index("subgraph cluster_s1 {")
        t.check("server_core" in out[:s1] or "greeter" in out[:s1], "scheduler 0's shard")
        t.check("server_core" in out[s1:] or "greeter" in out[s1:], "scheduler 1's shard")


@t.test
def graph_prints_dot(k):
    with Daemon(k, "greeter", "--threads", "1", "--introspect", "0", expect_servers=2) as d:
        with d.client("greeter") as c:
            c.send_line("x")
            c.read_line()
            port = d.address("introspect")[1]
            r = harness.run([k, "graph", "--connect", f"127.0.0.1:{port}"])
            t.eq(r.returncode, 0, f"kamaelia graph exits 0 (stderr {r.stderr[-300:]!r})")
            out = r.stdout.decode()
            t.check(out.startswith("digraph kamaelia {") and out.rstrip().endswith("}"), "a dot graph")
            t.check("connected_socket_adapter" in out, "it shows the greeter's connection")
            t.check("server_core" in out or "greeter" in out, "it shows the server")
            t.check("cluster_s" not in out, "one scheduler: no scheduler clusters")
            dot = os.path.join(harness.tempfile.gettempdir(), f"kamaelia-graph-{os.getpid()}.dot")
            r = harness.run([k, "graph", "--connect", f"127.0.0.1:{port}", "--output", dot])
            t.eq(r.returncode, 0, "--output works")
            with open(dot) as f:
                t.check(f.read().startswith("digraph"), "the file holds the graph")
            os.unlink(dot)


@t.test
def graph_on_a_port_that_is_not_introspection(k):
    with Daemon(k, "greeter") as d:
        r = harness.run([k, "graph", "--connect", f"127.0.0.1:{d.port}", "--timeout", "2"])
        t.check(r.returncode == 1, f"exit 1 ({r.returncode})")
        t.check(b"no complete picture" in r.stderr, f"a clear message ({r.stderr!r})")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = harness.run([k, "graph", "--connect", f"127.0.0.1:{port}", "--timeout", "2"])
    t.check(r.returncode == 1 and b"refused" in r.stderr.lower(), f"nothing listening: exit 1, says so ({r.stderr!r})")


t.main()
