#!/usr/bin/env python3
"""`--threads`: the daemon on a scheduler per thread ("Every core").

With `--threads 2` the chat's connections land on both schedulers (each
scheduler accepts on the same port, SO_REUSEPORT; the debug log says which
scheduler took a connection), clients on different schedulers chat through
the backplane that spans them, the connection cap holds for the whole
server, the threads are named kamaelia-sN, and SIGTERM with clients on both
exits 0. The greylist (grey, policy) and the board (bbs) are one service for
the whole daemon: a triplet first seen on one scheduler passes on the other,
a message posted on one is read on the other. `--threads 1` behaves as the
daemon always did; bad values are refused at start.
"""

import os
import re
import socket
import sys
import time
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from bbs_client import Session  # noqa: E402
from harness import Daemon, chat_line, chat_sync  # noqa: E402

t = harness.Tests("every_core")


def scheduler_of(d, port, server="chat", timeout=harness.IO_TIMEOUT):
    """The scheduler the daemon's debug log says took the client on local `port`."""
    conn_re = re.compile(rf"{server}: connection \d+ from 127\.0\.0\.1:(\d+) on scheduler (\d+)")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p, sched in conn_re.findall(d.stderr_text()):
            if int(p) == port:
                return int(sched)
        time.sleep(0.02)
    raise harness.TestFailure(f"no {server} connection line for port {port}:\n{d.tail()}")


def clients_on_both(d, server="chat", connect=None, local_port=lambda c: c.local_port, limit=64):
    """Connects until one client is on scheduler 0 and one on 1; closes the rest."""
    connect = connect or d.client
    by_sched = {}
    spare = []
    for _ in range(limit):
        c = connect()
        s = scheduler_of(d, local_port(c), server)
        if s in by_sched:
            spare.append(c)
        else:
            by_sched[s] = c
        if len(by_sched) == 2:
            break
    harness.close_all(spare)
    t.require(len(by_sched) == 2, f"{server} connections landed on both schedulers: {sorted(by_sched)}")
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
            t.check(re.search(rf'^kamaelia_scheduler_thread_run_queue_depth{{scheduler="{i}"}} [0-9.e+-]+$', text,
                              re.M) is not None, f"/metrics has scheduler {i}'s run-queue depth")
            t.check(re.search(rf'^kamaelia_scheduler_thread_wakeups_received_total{{scheduler="{i}"}} [0-9.e+-]+$',
                              text, re.M) is not None, f"/metrics has scheduler {i}'s cross-thread wake-ups")
        t.eq(d.stop(), 0, "exit 0")


def scrape(mport):
    """/metrics as {(name, sorted labels): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=harness.IO_TIMEOUT) as r:
        text = r.read().decode()
    samples = {}
    for line in text.splitlines():
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        if m:
            labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or "")))
            samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def sample(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


@t.test
def metrics_sum_the_shards(k):
    # /metrics reports the whole server: scheduler 1's shard's counters are
    # added to the server's, and each scheduler's share is its own series.
    with Daemon(k, "greeter", "--threads", "2", "--metrics-port", "0", "--log-level", "debug",
                expect_servers=2) as d:
        _, mport = d.address("metrics")
        a, b = clients_on_both(d, "greeter", connect=lambda: d.client("greeter"))
        try:
            def both_open():
                m = scrape(mport)
                return m if sample(m, "kamaelia_connections_open", server="greeter") == 2 else None
            m = harness.wait_until(both_open, 30, "two greeter connections open (the spares closed)")
            for i in (0, 1):
                t.eq(sample(m, "kamaelia_shard_connections_open", server="greeter", scheduler=str(i)), 1.0,
                     f"one connection open on scheduler {i}")
            total = sample(m, "kamaelia_connections_total", server="greeter")
            shares = [sample(m, "kamaelia_shard_connections_total", server="greeter", scheduler=str(i)) for i in (0, 1)]
            t.check(None not in shares and shares[0] >= 1 and shares[1] >= 1, f"both schedulers accepted: {shares}")
            t.eq(total, sum(shares), "connections_total is the sum over the schedulers")
            # Bytes from the client on scheduler 1 count in the server's totals.
            before = scrape(mport)
            line = b"x" * 100
            b.send_line(line)
            t.eq(b.read_line(), b"hello " + line + b"\r\n", "the reply on scheduler 1")
            def grown():
                m = scrape(mport)
                got_in = sample(m, "kamaelia_bytes_received_total", server="greeter") - \
                    sample(before, "kamaelia_bytes_received_total", server="greeter")
                got_out = sample(m, "kamaelia_bytes_sent_total", server="greeter") - \
                    sample(before, "kamaelia_bytes_sent_total", server="greeter")
                return (got_in, got_out) if (got_in, got_out) == (102, 108) else None
            harness.wait_until(grown, 30, "the bytes of the client on scheduler 1 in the server's totals")
            t.eq(d.stop(), 0, "exit 0")
        finally:
            harness.close_all([a, b])


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


GREY_DELAY = 3  # seconds: grey has no test clock, its delay is waited out (as test_grey.py does)


def smtp_reply(c):
    """One SMTP reply (its last line's code and the whole text)."""
    text = b""
    while True:
        line = c.read_line()
        text += line
        if line[3:4] != b"-":
            return int(line[:3]), text.decode(errors="replace")


def smtp_rcpt(c, helo="client.test", sender="alice@sender.test", rcpt="bob@example.org"):
    """Greeting (once), HELO, MAIL, RCPT on `c`: RCPT's reply code."""
    if not getattr(c, "greeted", False):
        code, text = smtp_reply(c)
        t.require(code == 220, f"greeting: {text}")
        c.send_line(f"HELO {helo}")
        code, text = smtp_reply(c)
        t.require(code == 250, f"HELO: {text}")
        c.greeted = True
    c.send_line(f"MAIL FROM:<{sender}>")
    code, text = smtp_reply(c)
    t.require(code == 250, f"MAIL: {text}")
    c.send_line(f"RCPT TO:<{rcpt}>")
    code, _ = smtp_reply(c)
    c.send_line("RSET")
    smtp_reply(c)
    return code


@t.test
def greylist_spans_the_schedulers(k):
    # No upstream is needed: the greylist answers at RCPT, the upstream is
    # dialled only for DATA.
    with Daemon(k, "grey", "--threads", "2", "--log-level", "debug", "--bind", "127.0.0.1", "--port", "0",
                "--upstream", f"127.0.0.1:{harness.free_port()}", "--delay", str(GREY_DELAY),
                "--allowed-domain", "example.org", "--servername", "mx.test") as d:
        a, b = clients_on_both(d, "grey")
        try:
            t.eq(smtp_rcpt(a), 451, "a new triplet is greylisted on scheduler 0")
            t.eq(smtp_rcpt(b), 451, "and still so on scheduler 1 before the delay")
            t.eq(smtp_rcpt(b, sender="carol@sender.test"), 451, "a triplet first seen on scheduler 1")
            time.sleep(GREY_DELAY + 1.5)  # the greylist's own clock must move past the delay
            t.eq(smtp_rcpt(b), 250, "after the delay the triplet first seen on scheduler 0 passes on scheduler 1")
            t.eq(smtp_rcpt(a, sender="carol@sender.test"), 250, "and the one first seen on 1 passes on 0")
            t.eq(d.stop(), 0, "SIGTERM with grey clients on both schedulers exits 0")
            t.check(a.closed_by_server(5) and b.closed_by_server(5), "both clients were closed")
        finally:
            harness.close_all([a, b])


POLICY_BASE = 1_800_000_000  # policy_test_time: the policy tests' clock (test_policy.py)


def policy_ask(c, at, sender="a@example.org"):
    lines = ["request=smtpd_access_policy", "protocol_state=RCPT", "protocol_name=ESMTP",
             "client_address=203.0.114.7", "client_name=unknown", "helo_name=mx.example.org",
             f"sender={sender}", "recipient=u@example.net", "instance=i1", f"policy_test_time={at}"]
    c.send(("\n".join(lines) + "\n\n").encode())
    reply = c.read_until(b"\n\n")
    t.require(reply.startswith(b"action="), f"a policy answer: {reply!r}")
    return reply[len(b"action="):-2].decode()


@t.test
def policy_spans_the_schedulers(k):
    with Daemon(k, "policy", "--threads", "2", "--log-level", "debug", "--bind", "127.0.0.1", "--port", "0",
                "--test-hooks") as d:
        a, b = clients_on_both(d, "policy")
        try:
            t.check(policy_ask(a, POLICY_BASE).startswith("DEFER_IF_PERMIT"), "new on scheduler 0: deferred")
            t.check(policy_ask(b, POLICY_BASE + 60).startswith("DEFER_IF_PERMIT"), "early retry on 1: deferred")
            t.check(policy_ask(b, POLICY_BASE, sender="b@example.org").startswith("DEFER_IF_PERMIT"),
                    "new on scheduler 1: deferred")
            a_pass = policy_ask(b, POLICY_BASE + 301)
            t.check(a_pass.startswith("PREPEND X-Greylist: delayed 301 seconds"),
                    f"first seen on 0, passes on 1 after the delay: {a_pass}")
            t.eq(policy_ask(a, POLICY_BASE + 400), "DUNNO", "and is remembered on 0")
            b_pass = policy_ask(a, POLICY_BASE + 400, sender="b@example.org")
            t.check(b_pass.startswith("PREPEND X-Greylist: delayed 400 seconds"),
                    f"first seen on 1, passes on 0: {b_pass}")
            t.eq(d.stop(), 0, "SIGTERM with policy clients on both schedulers exits 0")
        finally:
            harness.close_all([a, b])


@t.test
def policy_unix_socket_with_two_schedulers(k):
    # A unix socket has no SO_REUSEPORT: its listener stays on scheduler 0,
    # asking the same greylist service as any TCP connection would.
    d = Daemon(k, "policy", "--threads", "2", "--test-hooks", start=False, expect_servers=0)
    path = os.path.join(d.tmp, "policy.sock")
    d.argv += ["--unix", path]
    with d:
        d.start()
        t.require(d.wait_log("listening on unix:"), "listening line")
        c = harness.Client("127.0.0.1", 0, connect=False)
        c.sock.close()
        c.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.sock.settimeout(harness.IO_TIMEOUT)
        c.sock.connect(path)
        c.sock.settimeout(None)
        try:
            t.check(policy_ask(c, POLICY_BASE).startswith("DEFER_IF_PERMIT"), "unix socket: deferred")
            t.check(policy_ask(c, POLICY_BASE + 301).startswith("PREPEND X-Greylist"), "then passes")
            t.eq(d.stop(), 0, "exit 0")
        finally:
            c.close()


def add_bbs_user(k, data_dir, name, password):
    r = harness.run([k, "bbs-user", "add", name, "--data-dir", data_dir, "--kdf-iterations", "1000"],
                    input=(password + "\n").encode())
    t.require(r.returncode == 0, f"bbs-user add {name}: {r.stderr.decode(errors='replace')}")


@t.test
def board_spans_the_schedulers(k):
    d = Daemon(k, "bbs", "--threads", "2", "--log-level", "debug", "--bind", "127.0.0.1", "--port", "0",
               "--kdf-iterations", "1000", start=False)
    for name, pw in (("harry", "password"), ("dick", "secret")):
        add_bbs_user(k, os.path.join(d.tmp, "var"), name, pw)
    d.start()
    with d:
        h, dk = clients_on_both(d, "bbs", connect=lambda: Session(*d.address()), local_port=lambda s: s.c.local_port)
        try:
            t.check("Login Successful" in h.login("harry", "password"), "harry logs in on scheduler 0")
            out = h.post("Hello across schedulers", ["from scheduler 0"])
            m = re.search(r"Message (\d+) posted", out)
            t.require(m is not None, f"posted: {out!r}")
            out = dk.login("dick", "secret")
            t.check("You have 1 message(s) waiting" in out, f"dick, on scheduler 1, is told of it: {out!r}")
            dk.ask("", "messages> ")
            out = dk.ask("", "messages> ")
            t.check(f"message: {m.group(1)}\r\n" in out and "from scheduler 0\r\n" in out,
                    f"dick reads harry's message on scheduler 1: {out!r}")
            out = dk.ask("r", "subject [Re: Hello across schedulers]: ")
            dk.send("")
            dk.until("ends it")
            dk.send("from scheduler 1")
            dk.send(".")
            t.check(re.search(r"Message \d+ posted", dk.until("messages> ")) is not None, "dick replies")
            out = h.ask("", "messages> ")
            t.check("You have 1 message(s) waiting" in out, f"harry, on scheduler 0, sees the reply: {out!r}")
            t.eq(d.stop(), 0, "SIGTERM with board sessions on both schedulers exits 0")
        finally:
            harness.close_all([h, dk])


@t.test
def board_session_cap_holds_for_the_whole_server(k):
    with Daemon(k, "bbs", "--threads", "2", "--log-level", "debug", "--bind", "127.0.0.1", "--port", "0",
                "--max-sessions", "3") as d:
        sessions = [Session(*d.address()) for _ in range(16)]
        try:
            scheds = {scheduler_of(d, s.c.local_port, "bbs") for s in sessions}
            t.require(scheds == {0, 1}, f"16 connections landed on both schedulers: {scheds}")
            admitted = refused = 0
            for s in sessions:
                try:
                    s.until("login: ")
                    admitted += 1
                except harness.Closed:
                    t.check(b"the board is full (3 sessions)" in s.c.buf + s.raw, "refused politely")
                    refused += 1
            t.eq((admitted, refused), (3, 13), "--max-sessions 3 holds across two schedulers")
            t.eq(d.stop(), 0, "exit 0")
        finally:
            harness.close_all(sessions)


@t.test
def all_shares_one_greylist_and_one_board(k):
    ports = {f"KAMAELIA_{m.upper()}_PORT": "0" for m in ("greeter", "chat", "bbs", "grey", "policy")}
    binds = {f"KAMAELIA_{m.upper()}_BIND": "127.0.0.1" for m in ("greeter", "chat", "bbs", "grey")}
    env = {**ports, **binds, "KAMAELIA_GREY_ALLOWED_DOMAIN": "example.org", "KAMAELIA_BBS_KDF_ITERATIONS": "1000"}
    with Daemon(k, "all", "--threads", "2", "--log-level", "debug", "--introspect", "0", env_vars=env,
                expect_servers=6) as d:
        g0, g1 = clients_on_both(d, "grey", connect=lambda: d.client("grey"))
        p0, p1 = clients_on_both(d, "policy", connect=lambda: d.client("policy"))
        try:
            t.eq(smtp_rcpt(g0), 451, "grey on scheduler 0 asks the greylist")
            t.eq(smtp_rcpt(g1, sender="carol@sender.test"), 451, "grey on scheduler 1 too")
            for c in (p0, p1):
                lines = ["request=smtpd_access_policy", "protocol_state=RCPT", "client_address=203.0.114.7",
                         "sender=a@example.org", "recipient=u@example.net"]
                c.send(("\n".join(lines) + "\n\n").encode())
                t.check(c.read_until(b"\n\n").startswith(b"action=DEFER_IF_PERMIT"), "policy on each scheduler")
            r = harness.run([k, "graph", "--connect", f"127.0.0.1:{d.address('introspect')[1]}"])
            t.eq(r.returncode, 0, "kamaelia graph exits 0")
            dot = r.stdout.decode()
            for svc in ("greylist_service", "bbs_store_service", "bbs_kdf_service"):
                node = r'c\d+ \[label="\{\{[^"]*?\}\|' + svc + r'_\d+'
                t.eq(len(re.findall(node, dot)), 1, f"one {svc} for the whole daemon")
            s1 = dot.index("subgraph cluster_s1 {")
            t.check("greylist_service_" in dot[:s1] and "greylist_service_" not in dot[s1:], "on scheduler 0")
            t.eq(d.stop(), 0, "SIGTERM exits 0")
        finally:
            harness.close_all([g0, g1, p0, p1])


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
