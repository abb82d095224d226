#!/usr/bin/env python3
"""`--threads`: the daemon on a scheduler per thread ("Every core").

With `--threads 2` the chat's connections land on both schedulers (each
scheduler accepts on the same port, SO_REUSEPORT; the debug log says which
scheduler took a connection), clients on different schedulers chat through
the backplane that spans them, the connection cap holds for the whole
server, the threads are named kamaelia-sN, and SIGTERM with clients on both
exits 0. `--threads 1` behaves as the daemon always did; bad values are
refused at start.
"""

import os
import re
import sys
import time
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon, chat_line, chat_sync  # noqa: E402

t = harness.Tests("every_core")

CONN_RE = re.compile(r"chat: connection \d+ from 127\.0\.0\.1:(\d+) on scheduler (\d+)")


def scheduler_of(d, c, timeout=harness.IO_TIMEOUT):
    """The scheduler the daemon's debug log says took client `c`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for port, sched in CONN_RE.findall(d.stderr_text()):
            if int(port) == c.local_port:
                return int(sched)
        time.sleep(0.02)
    raise harness.TestFailure(f"no connection line for port {c.local_port}:\n{d.tail()}")


def clients_on_both(d, limit=64):
    """Connects until one client is on scheduler 0 and one on 1; closes the rest."""
    by_sched = {}
    spare = []
    for _ in range(limit):
        c = d.client()
        s = scheduler_of(d, c)
        if s in by_sched:
            spare.append(c)
        else:
            by_sched[s] = c
        if len(by_sched) == 2:
            break
    harness.close_all(spare)
    t.require(len(by_sched) == 2, f"connections landed on both schedulers: {sorted(by_sched)}")
    return by_sched[0], by_sched[1]


def thread_names(pid):
    names = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            pass
    return names


@t.test
def chat_across_two_schedulers(k):
    with Daemon(k, "chat", "--threads", "2", "--log-level", "debug") as d:
        log = d.stderr_text()
        t.eq(log.count("chat: listening on"), 1, "'listening on' once for the server, not per scheduler")
        t.check("2 schedulers, one thread each" in log, "the daemon says it runs two schedulers")
        names = thread_names(d.pid)
        t.check("kamaelia-s0" in names and "kamaelia-s1" in names, f"threads named per scheduler: {names}")
        a, b = clients_on_both(d)
        try:
            chat_sync([a, b], sender=a)
            chat_sync([b, a], sender=b, token="back")
            a.send_line("from scheduler 0")
            t.eq(b.read_line(), chat_line(a, "from scheduler 0"), "a line crosses from scheduler 0 to 1")
            for i in range(50):
                b.send_line(f"line {i}")
            got = [a.read_line() for _ in range(50)]
            t.eq(got, [chat_line(b, f"line {i}") for i in range(50)], "and back, in order")
            # SIGTERM with a client on each scheduler: both drain, exit 0.
            start = time.monotonic()
            code = d.stop()
            t.eq(code, 0, "SIGTERM with clients on both schedulers exits 0")
            t.check(time.monotonic() - start < 15, "within the stop timeout")
            t.check(a.closed_by_server(5) and b.closed_by_server(5), "both clients were closed")
        finally:
            harness.close_all([a, b])


@t.test
def metrics_per_scheduler(k):
    with Daemon(k, "chat", "--threads", "2", "--metrics-port", "0", expect_servers=2) as d:
        _, mport = d.address("metrics")
        text = ""
        for _ in range(100):  # each thread says which it is on its first turn
            with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=harness.IO_TIMEOUT) as r:
                text = r.read().decode()
            if 'scheduler="1"' in text:
                break
            time.sleep(0.05)
        for i in (0, 1):
            t.check(re.search(rf'^kamaelia_scheduler_thread_cpu_seconds_total{{scheduler="{i}"}} [0-9.e+-]+$', text,
                              re.M) is not None, f"/metrics has scheduler {i}'s CPU time")
        t.eq(d.stop(), 0, "exit 0")


@t.test
def cap_holds_for_the_whole_server(k):
    with Daemon(k, "chat", "--threads", "2", "--max-connections", "3", "--log-level", "debug") as d:
        clients = [d.client() for _ in range(8)]
        try:
            # The five over the cap are closed at once, whichever scheduler took them.
            closed = sum(1 for c in clients if c.closed_by_server(3))
            t.eq(closed, 5, "3 of 8 connections stay open with --max-connections 3 over two schedulers")
            t.eq(d.stop(), 0, "exit 0")
        finally:
            harness.close_all(clients)


@t.test
def one_thread_is_as_before(k):
    with Daemon(k, "chat", "--threads", "1", "--log-level", "debug") as d:
        a, b = d.client(), d.client()
        try:
            chat_sync([a, b])
            a.send_line("one scheduler")
            t.eq(b.read_line(), chat_line(a, "one scheduler"), "chat works")
            log = d.stderr_text()
            t.check("schedulers" not in log, "no scheduler count is logged")
            t.check(" on scheduler " not in log, "connection lines name no scheduler")
            names = thread_names(d.pid)
            t.check(not any(n.startswith("kamaelia-s") for n in names), f"no scheduler threads: {names}")
            t.eq(d.stop(), 0, "SIGTERM exits 0")
        finally:
            harness.close_all([a, b])


@t.test
def greeter_spreads_too(k):
    with Daemon(k, "greeter", "--threads", "2", "--log-level", "debug") as d:
        seen = set()
        for i in range(64):
            c = d.client()
            c.send_line(f"n{i}")
            t.eq(c.read_line(), f"hello n{i}\r\n".encode(), "greeter reply")
            for port, sched in re.findall(r"greeter: connection \d+ from 127\.0\.0\.1:(\d+) on scheduler (\d+)",
                                          d.stderr_text()):
                if int(port) == c.local_port:
                    seen.add(int(sched))
            c.close()
            if len(seen) == 2:
                break
        t.eq(seen, {0, 1}, "greeter connections on both schedulers")
        t.eq(d.stop(), 0, "exit 0")


@t.test
def bad_thread_counts_are_refused(k):
    for bad in ("0", "many", "-2", "1025"):
        d = Daemon(k, "chat", f"--threads={bad}", expect_servers=0)
        try:
            code = d.wait()
            t.eq(code, 2, f"--threads {bad}: exit 2")
            t.check("threads: expected auto or a number" in d.stderr_text(), f"--threads {bad}: says why")
        finally:
            d.cleanup()
    d = Daemon(k, "chat", expect_servers=0, env_vars={"KAMAELIA_KAMAELIA_THREADS": "lots"})
    try:
        t.eq(d.wait(), 2, "KAMAELIA_KAMAELIA_THREADS=lots: exit 2")
        t.check("threads: expected auto or a number" in d.stderr_text(), "the environment's value is checked too")
    finally:
        d.cleanup()


@t.test
def threads_from_the_environment(k):
    with Daemon(k, "chat", "--log-level", "debug", env_vars={"KAMAELIA_KAMAELIA_THREADS": "3"}) as d:
        t.check("3 schedulers, one thread each" in d.stderr_text(), "threads = 3 from KAMAELIA_KAMAELIA_THREADS")
        t.eq(d.stop(), 0, "exit 0")


@t.test
def a_busy_port_is_still_refused(k):
    with Daemon(k, "chat", "--threads", "2") as d:
        port = d.port
        other = Daemon(k, "chat", "--threads", "2", "--bind", "127.0.0.1", "--port", str(port), raw=True,
                       expect_servers=0)
        try:
            code = other.wait()
            t.check(code not in (0, None), f"a second daemon on the same port fails (exit {code})")
            t.check("address in use" in other.stderr_text(), "and says the address is in use")
        finally:
            other.cleanup()
        t.eq(d.stop(), 0, "exit 0")


t.main()
