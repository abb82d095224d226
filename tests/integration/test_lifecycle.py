#!/usr/bin/env python3
"""Starting and stopping the daemon: SIGTERM/SIGINT with live clients, a busy
port, `kamaelia all`.

- SIGTERM (and SIGINT) with clients connected: every client is told (its
  connection is closed by the server), the daemon logs that it stops and
  exits 0 without needing SIGKILL, within the grace period plus slack.
- A client that does not read (its replies pile up) does not hold the stop.
- A busy port: the daemon exits non-zero at once (within a second of a
  plain `kamaelia --version`), with a message naming the address and "in use".
- `kamaelia all` runs greeter and chat from one config file.
"""

import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon, TestFailure, chat_line, chat_sync  # noqa: E402

t = harness.Tests("lifecycle")


def stop_with_clients(k, sig: int, signame: str):
    with Daemon(k, "chat") as d:
        clients = [d.client() for _ in range(3)]
        try:
            chat_sync(clients)
            clients[0].send_line("about to stop")
            for c in clients[1:]:
                t.eq(c.read_line(), chat_line(clients[0], "about to stop"), "chat works before the signal")
            clients[1].send(b"half a line")  # unfinished input at the stop
            t0 = time.monotonic()
            d.signal(sig)
            for i, c in enumerate(clients):
                try:
                    c.read_to_close(timeout=60)
                except TestFailure as e:
                    t.check(False, f"client {i} is told when the daemon stops (closed): {e}")
            code = d.wait(60)
            elapsed = time.monotonic() - t0
            t.check(code is not None, f"the daemon exits after {signame} (still running after 60s)")
            if code is None:
                return
            t.eq(code, 0, f"exit code after {signame}")
            t.check(not d.killed, "no SIGKILL needed")
            log = d.stderr_text()
            t.check(f"{signame}: stopping" in log, f"the log says '{signame}: stopping'")
            t.check(re.search(r"chat: stopping, 3 connection\(s\) open", log) is not None,
                    "the log counts the 3 open connections at the stop")
            t.check("did not end within the grace period" not in log,
                    "every connection ended within the grace period (no forced close)")
            t.check(re.search(r"\bstopped\b", log) is not None, "the log says 'stopped'")
            t.note(f"exited {elapsed:.2f}s after {signame}")
            # Nothing listens any more.
            r = harness.run([k, "health", f"127.0.0.1:{d.port}"])
            t.check(r.returncode != 0, "the port is closed after the stop")
        finally:
            harness.close_all(clients)


@t.test
def sigterm_with_live_clients(k):
    stop_with_clients(k, signal.SIGTERM, "SIGTERM")


@t.test
def sigint_with_live_clients(k):
    stop_with_clients(k, signal.SIGINT, "SIGINT")


@t.test
def sigterm_while_a_client_does_not_read(k):
    with Daemon(k, "greeter") as d:
        hog = d.client(rcvbuf=4096)
        other = d.client()
        stop_sending = threading.Event()

        def writer():
            # Lines whose replies we never read: the daemon's queue for us fills,
            # then it stops reading from us and our send blocks.
            try:
                while not stop_sending.is_set():
                    hog.send(b"x\r\n" * 10000)
            except (OSError, TestFailure):
                pass

        w = threading.Thread(target=writer, daemon=True)
        w.start()
        try:
            time.sleep(2)
            other.send_line("hi")
            t.eq(other.read_line(), b"hello hi\r\n", "another client still answered")
            t.check(d.alive(), "daemon alive")
            d.signal(signal.SIGTERM)
            code = d.wait(60)
            t.check(code is not None, "the daemon exits after SIGTERM although a client does not read")
            t.eq(code, 0, "exit code")
            t.check(other.closed_by_server(30), "the other client is closed")
        finally:
            stop_sending.set()
            harness.close_all([hog, other])
            w.join(10)


@t.test
def idle_daemon_stops_at_once(k):
    with Daemon(k, "greeter") as d:
        d.signal(signal.SIGTERM)
        code = d.wait(30)
        t.eq(code, 0, "exit code after SIGTERM with no clients")


def time_version(k) -> float:
    t0 = time.monotonic()
    r = harness.run([k, "--version"])
    dt = time.monotonic() - t0
    t.eq(r.returncode, 0, "kamaelia --version")
    return dt


def check_busy(k, argv, addr: str, baseline: float, what: str):
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        r = harness.run(argv + ["--data-dir", os.path.join(tmp, "var")], timeout=60, cwd=tmp)
    dt = time.monotonic() - t0
    err = r.stderr.decode(errors="replace")
    t.check(r.returncode != 0, f"{what}: exit code is non-zero (got {r.returncode})")
    t.check(addr in err, f"{what}: the message names {addr}: {err.strip()[-300:]!r}")
    t.check("in use" in err.lower(), f"{what}: the message says 'in use': {err.strip()[-300:]!r}")
    t.check("listening on" not in err, f"{what}: it does not claim to listen")
    t.check(dt < baseline + 1.0, f"{what}: exits within a second ({dt:.2f}s; a bare start takes {baseline:.2f}s)")


@t.test
def busy_port(k):
    baseline = max(time_version(k), time_version(k))
    # A plain socket holds the port.
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen(5)
    port = holder.getsockname()[1]
    try:
        check_busy(k, [k, "greeter", "--bind", "127.0.0.1", "--port", str(port)], f"127.0.0.1:{port}", baseline,
                   "greeter on a port a socket holds")
        check_busy(k, [k, "chat", "--bind", "127.0.0.1", "--port", str(port)], f"127.0.0.1:{port}", baseline,
                   "chat on a port a socket holds")
    finally:
        holder.close()
    # Another kamaelia holds the port; it is not disturbed.
    with Daemon(k, "greeter") as first:
        check_busy(k, [k, "greeter", "--bind", "127.0.0.1", "--port", str(first.port)],
                   f"127.0.0.1:{first.port}", baseline, "a second greeter on the first one's port")
        with first.client() as c:
            c.send_line("still mine")
            t.eq(c.read_line(), b"hello still mine\r\n", "the first daemon still serves")
        # `all` with chat's port busy fails as a whole (no half-started daemon).
        with tempfile.TemporaryDirectory() as tmp:
            cfg = os.path.join(tmp, "k.ini")
            with open(cfg, "w") as f:
                f.write(f"[greeter]\nbind = 127.0.0.1\nport = 0\n[chat]\nbind = 127.0.0.1\nport = {first.port}\n"
                        "[bbs]\nbind = 127.0.0.1\nport = 0\n[grey]\nbind = 127.0.0.1\nport = 0\n"
                        "[policy]\nbind = 127.0.0.1\nport = 0\n")
            check_busy(k, [k, "all", "--config", cfg], f"127.0.0.1:{first.port}", baseline,
                       "all with chat's port busy")


@t.test
def all_runs_greeter_and_chat(k):
    tmp = tempfile.mkdtemp(prefix="kamaelia-it-all-")
    cfg = os.path.join(tmp, "k.ini")
    with open(cfg, "w") as f:
        f.write("# every server on a free loopback port\n[greeter]\nbind = 127.0.0.1\nport = 0\n\n"
                "[chat]\nbind = 127.0.0.1\nport = 0\n\n[bbs]\nbind = 127.0.0.1\nport = 0\n\n"
                "[grey]\nbind = 127.0.0.1\nport = 0\n\n[policy]\nbind = 127.0.0.1\nport = 0\n")
    try:
        all_in_one(k, cfg)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def all_in_one(k, cfg):
    with Daemon(k, "all", "--config", cfg, expect_servers=5) as d:
        t.check({"chat", "greeter", "bbs", "grey", "policy"} <= set(d.servers),
                f"greeter, chat, bbs, grey and policy listening: {sorted(d.servers)}")
        t.check(d.address("greeter")[1] != d.address("chat")[1], "two ports")
        with d.client("greeter") as g:
            g.send_line("all")
            t.eq(g.read_line(), b"hello all\r\n", "greeter in `all`")
        a, b = d.client("chat"), d.client("chat")
        try:
            chat_sync([a, b])
            a.send_line("chat in all")
            t.eq(b.read_line(), chat_line(a, "chat in all"), "chat in `all`")
        finally:
            harness.close_all([a, b])
        d.signal(signal.SIGTERM)
        t.eq(d.wait(60), 0, "`all` exits 0 on SIGTERM")


if __name__ == "__main__":
    t.main()
