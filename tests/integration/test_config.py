#!/usr/bin/env python3
"""The daemon's config file: precedence flag > file > default, and errors.

Each server setting and each [kamaelia] setting is checked three ways: the
default (no file, no flag), the file alone (it beats the default), and file
plus flag (the flag wins). An unknown key, an unknown section, a bad value,
a key outside a section and a missing file each make the daemon exit
non-zero with a message naming the file and line, before it listens.
"""

import os
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon, TestFailure  # noqa: E402

t = harness.Tests("config")


class Tmp:
    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="kamaelia-it-config-")
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, text):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        return p


def line_limit_is(d, limit: int) -> bool:
    """True if the greeter answers a line of `limit` bytes and refuses one of limit + 1."""
    with d.client() as c:
        c.send(b"a" * limit + b"\r\n")
        ok = c.read_line() == b"hello " + b"a" * limit + b"\r\n"
    with d.client() as c:
        c.send(b"b" * (limit + 1) + b"\r\n")
        try:
            got = c.read_to_close()
        except TestFailure:
            return False
        return ok and b"line too long" in got


def wait_health(k, port: int, timeout: float = harness.START_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if harness.run([k, "health", f"127.0.0.1:{port}"]).returncode == 0:
            return True
        time.sleep(0.2)
    return False


@t.test
def server_settings_flag_beats_file_beats_default(k):
    with Tmp() as tmp:
        p_file, p_flag = harness.free_port(), harness.free_port()
        cfg = tmp.write("k.ini", f"# greeter settings\n[greeter]\nbind = 127.0.0.1\nport = {p_file}\n"
                                 f"max-line = 50\nidle-timeout = 600\nmax-connections = 100\n")
        # default max-line (8192), flags only
        with Daemon(k, "greeter") as d:
            t.check(line_limit_is(d, 8192), "default max-line is 8192")
        # file beats default
        with Daemon(k, "greeter", "--config", cfg, "--data-dir", tmp.path("var"), raw=True) as d:
            t.eq(d.address(), ("127.0.0.1", p_file), "bind and port from the file")
            t.check(line_limit_is(d, 50), "max-line from the file (50)")
        # flag beats file
        with Daemon(k, "greeter", "--config", cfg, "--port", str(p_flag), "--max-line", "70",
                    "--data-dir", tmp.path("var"), raw=True) as d:
            t.eq(d.address(), ("127.0.0.1", p_flag), "--port beats the file's port")
            t.check(line_limit_is(d, 70), "--max-line beats the file's max-line")
        # max-connections: file 1, flag 2
        cfg2 = tmp.write("k2.ini", "[greeter]\nbind = 127.0.0.1\nport = 0\nmax-connections = 1\n")
        for extra, cap in (([], 1), (["--max-connections", "2"], 2)):
            with Daemon(k, "greeter", "--config", cfg2, "--data-dir", tmp.path("var"), *extra, raw=True) as d:
                held = [d.client() for _ in range(cap)]
                try:
                    for c in held:
                        c.send_line("in")
                        t.eq(c.read_line(), b"hello in\r\n", f"max-connections {cap}: within the cap")
                    with d.client() as c:
                        t.check(c.closed_by_server(), f"max-connections {cap} ({'flag' if extra else 'file'}): "
                                                      f"one more is closed")
                finally:
                    harness.close_all(held)


@t.test
def idle_timeout_flag_beats_file(k):
    with Tmp() as tmp:
        cfg = tmp.write("k.ini", "[greeter]\nbind = 127.0.0.1\nport = 0\nidle-timeout = 1.5\n")
        with Daemon(k, "greeter", "--config", cfg, "--data-dir", tmp.path("var"), raw=True) as d:
            with d.client() as c:
                t.check(c.closed_by_server(60), "idle-timeout from the file closes a silent client")
        with Daemon(k, "greeter", "--config", cfg, "--idle-timeout", "600", "--data-dir", tmp.path("var"),
                    raw=True) as d:
            with d.client() as c:
                # Longer than the file's 1.5 s (with the 1 s sweep), far below the flag's 600 s.
                t.check(not c.closed_by_server(6), "--idle-timeout 600 beats the file's 1.5")
                c.send_line("alive")
                t.eq(c.read_line(), b"hello alive\r\n", "still served")


@t.test
def kamaelia_section_flag_beats_file_beats_default(k):
    with Tmp() as tmp:
        file_log, flag_log = tmp.path("file.log"), tmp.path("flag.log")
        file_dd, flag_dd = tmp.path("file-data"), tmp.path("flag-data")
        cfg = tmp.write("k.ini", f"[kamaelia]\nlog-file = {file_log}\ndata-dir = {file_dd}\nlog-level = info\n"
                                 "[greeter]\nbind = 127.0.0.1\nport = 0\n")
        # Default: logs on stderr, data in ./var (relative to the working directory).
        with Tmp() as cwd:
            with Daemon(k, "greeter", "--bind", "127.0.0.1", "--port", "0", raw=True, cwd=cwd.dir) as d:
                t.check("listening on" in d.stderr_text(), "default: logs on stderr")
                t.check(os.path.isdir(cwd.path("var")), "default data dir ./var is created")
        # File: log-file and data-dir from the file.
        with Daemon(k, "greeter", "--config", cfg, raw=True, log_file=file_log) as d:
            t.check("listening on" in Daemon.read_log(file_log), "log-file from the file gets the log")
            t.check("listening on" not in d.stderr_text(), "...and stderr does not")
            t.check(os.path.isdir(file_dd), "data-dir from the file is created")
        os.unlink(file_log)
        shutil.rmtree(file_dd)
        # Flags win.
        with Daemon(k, "greeter", "--config", cfg, "--log-file", flag_log, "--data-dir", flag_dd, raw=True,
                    log_file=flag_log) as d:
            t.check("listening on" in Daemon.read_log(flag_log), "--log-file beats the file's log-file")
            t.check(not os.path.exists(file_log) or "listening on" not in Daemon.read_log(file_log),
                    "the file's log-file is not used")
            t.check(os.path.isdir(flag_dd), "--data-dir beats the file's data-dir")
            t.check(not os.path.exists(file_dd), "the file's data-dir is not created")
        # log-level: file says warn (no info lines); the flag says info.
        port = harness.free_port()
        cfg_warn = tmp.write("warn.ini", f"[kamaelia]\nlog-level = warn\n[greeter]\nbind = 127.0.0.1\nport = {port}\n")
        with Daemon(k, "greeter", "--config", cfg_warn, "--data-dir", tmp.path("var"), raw=True,
                    expect_servers=0) as d:
            t.require(wait_health(k, port), "the daemon with log-level warn comes up")
            t.check("listening on" not in d.stderr_text(), "log-level = warn from the file hides info lines")
        with Daemon(k, "greeter", "--config", cfg_warn, "--log-level", "info", "--port", "0",
                    "--data-dir", tmp.path("var"), raw=True) as d:
            t.check("listening on" in d.stderr_text(), "--log-level info beats the file's warn")


def check_error(k, tmp, name, text, line, words, sub="greeter"):
    cfg = tmp.write(name, text)
    r = harness.run([k, sub, "--config", cfg, "--data-dir", tmp.path("var")], timeout=60, cwd=tmp.dir)
    err = r.stderr.decode(errors="replace")
    what = f"{name} (line {line})"
    t.check(r.returncode != 0, f"{what}: exit code non-zero (got {r.returncode}; stderr {err!r})")
    where = f"{cfg}:{line}" if line else cfg
    t.check(where in err, f"{what}: the message names {where}: {err.strip()!r}")
    for w in words:
        t.check(w in err, f"{what}: the message mentions {w!r}: {err.strip()!r}")
    t.check("listening on" not in err, f"{what}: the daemon did not start listening")


@t.test
def config_errors_name_the_line(k):
    with Tmp() as tmp:
        check_error(k, tmp, "unknown-key.ini",
                    "# a comment\n\n[greeter]\nport = 0\ncolour = blue\nbind = 127.0.0.1\n", 5, ["colour"])
        check_error(k, tmp, "unknown-key-kamaelia.ini",
                    "[kamaelia]\nlog-level = info\nverbosity = 3\n[greeter]\nport = 0\n", 3, ["verbosity"])
        check_error(k, tmp, "unknown-section.ini",
                    "[greeter]\nport = 0\n[gretter]\nport = 0\n", 3, ["gretter"])
        check_error(k, tmp, "bad-value.ini",
                    "[greeter]\nbind = 127.0.0.1\nport = 0\nmax-line = lots\n", 4, ["max-line", "lots"])
        check_error(k, tmp, "bad-port.ini",
                    "[greeter]\nbind = 127.0.0.1\n\n\nport = 70000\n", 5, ["port"])
        check_error(k, tmp, "outside-section.ini",
                    "port = 0\n[greeter]\n", 1, [])
        check_error(k, tmp, "no-equals.ini",
                    "[greeter]\nbind 127.0.0.1\n", 2, [])
        check_error(k, tmp, "chat-unknown.ini",
                    "[chat]\nbind = 127.0.0.1\nport = 0\nmotd = hi\n", 4, ["motd"], sub="chat")
        check_error(k, tmp, "all-unknown.ini",
                    "[greeter]\nport = 0\n[chat]\nport = 0\nrooms = 3\n", 5, ["rooms"], sub="all")
        # A key that is wrong for one section though right for another.
        check_error(k, tmp, "wrong-section.ini",
                    "[kamaelia]\nport = 0\n", 2, ["port"])
        # A missing file.
        missing = tmp.path("missing.ini")
        r = harness.run([k, "greeter", "--config", missing], timeout=60, cwd=tmp.dir)
        t.check(r.returncode != 0, "a missing config file: exit code non-zero")
        t.check(missing in r.stderr.decode(errors="replace"), f"the message names the file: {r.stderr!r}")
        # A bad flag value and an unknown flag are usage errors.
        r = harness.run([k, "greeter", "--port", "notanumber"], timeout=60, cwd=tmp.dir)
        t.check(r.returncode != 0, f"--port notanumber: exit non-zero ({r.returncode})")
        r = harness.run([k, "greeter", "--no-such-flag"], timeout=60, cwd=tmp.dir)
        t.check(r.returncode != 0, f"an unknown flag: exit non-zero ({r.returncode})")
        r = harness.run([k, "greeter", "--log-level", "loud", "--port", "0", "--bind", "127.0.0.1"],
                        timeout=60, cwd=tmp.dir)
        t.check(r.returncode != 0, f"an unknown log level: exit non-zero ({r.returncode})")


if __name__ == "__main__":
    t.main()
