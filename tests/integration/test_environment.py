#!/usr/bin/env python3
"""Configuration from the environment, the listeners file, `kamaelia health`
and the bounded stop - the daemon as a container runs it.

- one rule for every key: KAMAELIA_<SECTION>_<KEY>; precedence flag >
  environment > file > default, checked on one setting all four ways;
- KAMAELIA_CONFIG is read when the file exists (a missing one is no error,
  --config's is), KAMAELIA_DATA_DIR is where a single server keeps its data;
- an unknown key in a section's name space (KAMAELIA_GREY_UPSTRAEM), or a
  bad value, stops the start with the variable's name; other KAMAELIA_* names
  are ignored with a warning;
- <data-dir>/run/listeners names every listener, `kamaelia health` without an
  argument checks each, and fails once one is gone;
- a stop waits at most the stop timeout for a message stuck in flight.
"""

import os
import signal
import socket
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon  # noqa: E402

t = harness.Tests("environment")


class Tmp(tempfile.TemporaryDirectory):
    """A scratch directory: .path(names) inside it, .write(name, text) a file there."""

    def __init__(self):
        super().__init__(prefix="kamaelia-it-env-")

    def __enter__(self):
        self.dir = self.name
        return self

    def path(self, *names):
        return os.path.join(self.dir, *names)

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)


def line_limit(d) -> int | None:
    """The greeter's max-line, found by asking: the longest of a few probe sizes it answers."""
    best = None
    for n in (100, 150, 200, 250, 300):
        with d.client() as c:
            c.send(b"x" * n + b"\r\n")
            try:
                ok = c.read_line() == b"hello " + b"x" * n + b"\r\n"
            except (harness.TestFailure, harness.Closed, OSError):
                ok = False
        if not ok:
            return best
        best = n
    return best


@t.test
def precedence_flag_env_file_default(k):
    with Tmp() as tmp:
        conf = tmp.write("k.conf", "[greeter]\nmax-line = 150\n")
        # default: longer than every probe
        with Daemon(k, "greeter") as d:
            t.eq(line_limit(d), 300, "default max-line (no file, no environment)")
        # file
        with Daemon(k, "greeter", "--config", conf) as d:
            t.eq(line_limit(d), 150, "the file beats the default")
        # environment over file
        with Daemon(k, "greeter", "--config", conf, env_vars={"KAMAELIA_GREETER_MAX_LINE": "200"}) as d:
            t.eq(line_limit(d), 200, "the environment beats the file")
        # flag over environment
        with Daemon(k, "greeter", "--config", conf, "--max-line", "250",
                    env_vars={"KAMAELIA_GREETER_MAX_LINE": "200"}) as d:
            t.eq(line_limit(d), 250, "the flag beats the environment")
        # KAMAELIA_CONFIG names the file
        with Daemon(k, "greeter", env_vars={"KAMAELIA_CONFIG": conf}) as d:
            t.eq(line_limit(d), 150, "KAMAELIA_CONFIG is read")
        # a missing KAMAELIA_CONFIG file: defaults, no error (the image always sets it)
        with Daemon(k, "greeter", env_vars={"KAMAELIA_CONFIG": tmp.path("absent.conf")}) as d:
            t.eq(line_limit(d), 300, "a missing KAMAELIA_CONFIG file is skipped")
        # a missing --config file is still an error
        r = harness.run([k, "greeter", "--port", "0", "--config", tmp.path("absent.conf")])
        t.check(r.returncode == 2, f"a missing --config file fails the start: {r.returncode} {r.stderr!r}")


@t.test
def data_dir_from_the_environment(k):
    with Tmp() as tmp:
        data = tmp.path("data")
        with Daemon(k, "greeter", "--bind", "127.0.0.1", "--port", "0", raw=True, cwd=tmp.dir,
                    env_vars={"KAMAELIA_DATA_DIR": data}) as d:
            listeners = os.path.join(data, "run", "listeners")
            t.require(os.path.exists(listeners), "the listeners file is in KAMAELIA_DATA_DIR")
            t.check(not os.path.exists(tmp.path("var")), "nothing under ./var relative to the working directory")
            with open(listeners) as f:
                t.eq(f.read(), f"greeter 127.0.0.1:{d.port}\n", "the listeners file")
        # The tools find the same directory: a board user made with bbs-user lands there.
        r = harness.run([k, "bbs-user", "add", "dora"], input=b"pw-for-dora\n", cwd=tmp.dir,
                        env_vars={"KAMAELIA_DATA_DIR": data})
        t.eq(r.returncode, 0, f"bbs-user with KAMAELIA_DATA_DIR ({r.stderr!r})")
        t.check(os.path.exists(os.path.join(data, "bbs.sqlite")), "bbs.sqlite in KAMAELIA_DATA_DIR")


@t.test
def unknown_or_bad_variables_stop_the_start(k):
    for env, name in ((({"KAMAELIA_GREETER_MAX_LNE": "10"}), "KAMAELIA_GREETER_MAX_LNE"),
                      (({"KAMAELIA_KAMAELIA_THREADZ": "1"}), "KAMAELIA_KAMAELIA_THREADZ"),
                      (({"KAMAELIA_GREETER_PORT": "99999"}), "KAMAELIA_GREETER_PORT"),
                      (({"KAMAELIA_KAMAELIA_STOP_TIMEOUT": "soon"}), "KAMAELIA_KAMAELIA_STOP_TIMEOUT"),
                      (({"KAMAELIA_KAMAELIA_LOG_LEVEL": "loud"}), "loud")):
        with Tmp() as tmp:
            r = harness.run([k, "greeter", "--bind", "127.0.0.1", "--port", "0", "--data-dir", tmp.path("v")],
                            env_vars=env)
            err = r.stderr.decode(errors="replace")
            t.check(r.returncode == 2 and name in err, f"{env}: exit 2 naming {name}, got {r.returncode}: {err!r}")


@t.test
def other_kamaelia_variables_are_ignored_with_a_warning(k):
    """KAMAELIA_SOURCE_DIR (a build script's) is outside every section's name space."""
    with Daemon(k, "greeter", env_vars={"KAMAELIA_SOURCE_DIR": "/src"}) as d:
        t.check(d.wait_log("KAMAELIA_SOURCE_DIR: not a config key"), "a warning names the ignored variable")
        with d.client() as c:
            c.send(b"hi\r\n")
            t.eq(c.read_line(), b"hello hi\r\n", "the greeter serves")


@t.test
def environment_reaches_every_server_of_all(k):
    """`all` configured by the environment only: each server on a free port,
    listed in run/listeners; health passes, then fails once the daemon is gone."""
    with Tmp() as tmp:
        data = tmp.path("data")
        env = {"KAMAELIA_DATA_DIR": data}
        for server in ("bbs", "greeter", "chat", "grey", "policy"):
            env[f"KAMAELIA_{server.upper()}_PORT"] = "0"
            env[f"KAMAELIA_{server.upper()}_BIND"] = "127.0.0.1"
        env["KAMAELIA_GREY_UPSTREAM"] = "127.0.0.1:9"
        env["KAMAELIA_GREY_ALLOWED_DOMAIN"] = "example.org,example.net"
        d = Daemon(k, "all", raw=True, cwd=tmp.dir, env_vars=env, expect_servers=0)
        with d:
            d.wait_listening(5)
            listeners = os.path.join(data, "run", "listeners")
            deadline = time.monotonic() + harness.START_TIMEOUT
            while not os.path.exists(listeners) and time.monotonic() < deadline:
                time.sleep(0.05)
            with open(listeners) as f:
                lines = dict(line.split() for line in f.read().splitlines())
            servers = d.listening_lines()
            t.eq(set(lines), set(servers), "the listeners file names every server that listens")
            for name, (addr, port) in servers.items():
                t.eq(lines.get(name), f"{addr}:{port}", f"{name}'s address")
            r = harness.run([k, "health"], cwd=tmp.dir, env_vars={"KAMAELIA_DATA_DIR": data})
            t.eq(r.returncode, 0, f"health without an argument ({r.stderr!r})")
            r = harness.run([k, "health", "--data-dir", data])
            t.eq(r.returncode, 0, f"health --data-dir ({r.stderr!r})")
        t.eq(d.exit_code, 0, "exit 0 on SIGTERM")
        r = harness.run([k, "health", "--data-dir", data])
        t.check(r.returncode != 0, "health fails once the daemon has stopped")
        # A listener that does not answer fails the check and is named.
        os.makedirs(os.path.join(data, "run"), exist_ok=True)
        with open(os.path.join(data, "run", "listeners"), "w") as f:
            f.write(f"greeter 127.0.0.1:{harness.free_port()}\n")
        r = harness.run([k, "health", "--data-dir", data, "--timeout", "2"])
        t.check(r.returncode == 1 and b"greeter" in r.stderr, f"a dead listener fails, named: {r.stderr!r}")


class StallingUpstream:
    """An SMTP server that takes a message and never answers its final dot."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.got_dot = threading.Event()
        self.conns = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        self.conns.append(c)
        f = c.makefile("rb")
        c.sendall(b"220 stall ESMTP\r\n")
        in_data = False
        for line in f:
            if in_data:
                if line in (b".\r\n", b".\n"):
                    self.got_dot.set()  # and never answer
                continue
            verb = line[:4].upper()
            if verb == b"DATA":
                in_data = True
                c.sendall(b"354 go on\r\n")
            elif verb == b"QUIT":
                c.sendall(b"221 bye\r\n")
                return
            else:
                c.sendall(b"250 ok\r\n")

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


@t.test
def stop_is_bounded_by_the_stop_timeout(k):
    """grey would wait up to 60 s for an upstream; the stop timeout (2 s here,
    from the environment) bounds the drain, and the exit is still 0."""
    up = StallingUpstream()
    try:
        with Tmp() as tmp:
            env = {"KAMAELIA_GREY_UPSTREAM": f"127.0.0.1:{up.port}", "KAMAELIA_KAMAELIA_STOP_TIMEOUT": "2"}
            with Daemon(k, "grey", "--bind", "127.0.0.1", "--port", "0", "--data-dir", tmp.path("v"),
                        raw=True, env_vars=env) as d:
                with d.client() as c:
                    c.read_line()  # 220
                    for cmd in (b"EHLO client.example", b"MAIL FROM:<a@sender.example>", b"RCPT TO:<postmaster>"):
                        c.send_line(cmd)
                        reply = c.read_until(b"\r\n")
                        while reply.splitlines()[-1][3:4] == b"-":
                            reply += c.read_until(b"\r\n")
                    t.require(reply.startswith(b"250"), f"RCPT TO:<postmaster> accepted: {reply!r}")
                    c.send_line(b"DATA")
                    t.require(c.read_line().startswith(b"354"), "354 once the upstream said 354")
                    c.send(b"Subject: stuck\r\n\r\nbody\r\n.\r\n")
                    t.require(up.got_dot.wait(harness.IO_TIMEOUT), "the upstream got the message")
                    t0 = time.monotonic()
                    d.signal(signal.SIGTERM)
                    code = d.wait(timeout=30)
                    took = time.monotonic() - t0
                t.eq(code, 0, "exit 0 after the bounded drain")
                # 2 s of drain; generous for a loaded machine, far below grey's own 60 s.
                t.check(took < 20, f"stopped within the stop timeout's reach: {took:.1f}s")
                t.check(took >= 1.5, f"the drain waited for the message in flight: {took:.1f}s")
    finally:
        up.close()


t.main()
