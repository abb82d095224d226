"""Integration-test harness: the real `kamaelia` daemon, real clients, loopback only.

Standard library only (no pytest). A test script does:

    import harness
    t = harness.Tests("greeter")            # parses --kamaelia PATH

    @t.test
    def replies(k):                         # k: the path of the kamaelia binary
        with harness.Daemon(k, "greeter") as d:
            c = d.client()
            c.send_line("bob")
            t.eq(c.read_line(), b"hello bob\\r\\n", "greeter reply")

    t.main()                                # prints "N passed, M failed", exits 0/1

Daemon starts `kamaelia SUB --bind 127.0.0.1 --port 0 --data-dir TMP ...`
with its stderr in a file, waits for "listening on ADDR:PORT" there (the
port comes from the log, never guessed), and stops by pid: SIGTERM, then
SIGKILL after a bounded wait. Every daemon is also stopped in a `finally`,
at exit, and by the kernel if this script dies (PR_SET_PDEATHSIG), so no
process outlives a test. Deadlines are for liveness only: generous (tens of
seconds), because the daemon may run under AddressSanitizer on a slow,
shared two-core machine.
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

# Liveness deadlines (seconds). Generous on purpose: they only decide when a
# hung test gives up, never whether a correct daemon passes.
START_TIMEOUT = 60.0
IO_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0

LISTENING_RE = re.compile(r"(?:(\S+): )?listening on (\[[^\]]+\]|[^\s:]+):(\d+)")
SANITIZER_RE = re.compile(
    r"ERROR: (?:AddressSanitizer|LeakSanitizer|ThreadSanitizer)|runtime error:|WARNING: ThreadSanitizer"
)

_live: list["Daemon"] = []
_PR_SET_PDEATHSIG = 1


class TestFailure(AssertionError):
    pass


# --------------------------------------------------------------------------
# process helpers


def _pdeathsig():
    """In the child before exec: die with SIGKILL if the test process dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def raise_nofile() -> int:
    """Raises this process's RLIMIT_NOFILE soft limit to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for the config-file tests, which need a fixed number)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def rss_kb(pid: int) -> int | None:
    """VmRSS of a process, in KiB (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def sanitizer_env(extra: str = "", env_vars: dict | None = None) -> dict:
    """The environment for the daemon: ours, with sanitizer reports on stderr.

    `extra` is appended to ASAN_OPTIONS (e.g. a small quarantine for the
    memory-bound test, so that RSS measures the daemon and not ASan's
    recycling of freed blocks). KAMAELIA_* variables are the daemon's
    configuration: none is inherited (a developer's KAMAELIA_CONFIG must not
    change a test), only those in `env_vars` are set.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAMAELIA_")}
    env.update(env_vars or {})
    asan = env.get("ASAN_OPTIONS", "")
    if extra:
        asan = f"{asan}:{extra}" if asan else extra
    if asan:
        env["ASAN_OPTIONS"] = asan
    return env


# --------------------------------------------------------------------------
# the daemon


class Daemon:
    """One `kamaelia` process. Use as a context manager (it always stops).

    sub: greeter | chat | all. `args` are extra flags. Unless `raw` is set,
    --bind 127.0.0.1 --port 0 --data-dir TMP/var are added (for `all`, which
    has no server flags, only --data-dir).
    """

    def __init__(self, kamaelia: str, sub: str, *args: str, raw: bool = False, expect_servers: int | None = None,
                 log_file: str | None = None, env_extra: str = "", start: bool = True, cwd: str | None = None,
                 env_vars: dict | None = None):
        self.kamaelia = kamaelia
        self.sub = sub
        self.tmp = tempfile.mkdtemp(prefix=f"kamaelia-it-{sub}-")
        self.cwd = cwd or self.tmp
        self.stderr_path = os.path.join(self.tmp, "stderr.log")
        self.log_path = log_file  # where "listening on" appears, if not stderr
        self.argv = [kamaelia, sub]
        if not raw:
            if sub in ("greeter", "chat"):
                self.argv += ["--bind", "127.0.0.1", "--port", "0"]
            self.argv += ["--data-dir", os.path.join(self.tmp, "var")]
        self.argv += list(args)
        self.env_extra = env_extra
        self.env_vars = env_vars
        self.expect_servers = expect_servers if expect_servers is not None else (2 if sub == "all" else 1)
        self.proc: subprocess.Popen | None = None
        self.servers: dict[str, tuple[str, int]] = {}
        self.exit_code: int | None = None
        self.killed = False
        if start:
            self.start()

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> "Daemon":
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._stderr, stderr=self._stderr,
                                     cwd=self.cwd, env=sanitizer_env(self.env_extra, self.env_vars),
                                     preexec_fn=_pdeathsig)
        _live.append(self)
        if self.expect_servers:
            self.wait_listening(self.expect_servers)
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_listening(self, n: int = 1, timeout: float = START_TIMEOUT) -> dict[str, tuple[str, int]]:
        """Waits for n "listening on ADDR:PORT" lines; returns {server: (addr, port)}."""
        deadline = time.monotonic() + timeout
        while True:
            self.servers = self.listening_lines()
            if len(self.servers) >= n:
                return self.servers
            if self.proc.poll() is not None:
                raise TestFailure(f"daemon exited with {self.proc.returncode} before listening:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise TestFailure(f"no 'listening on' line after {timeout}s:\n{self.log_text()}")
            time.sleep(0.05)

    def listening_lines(self) -> dict[str, tuple[str, int]]:
        text = self.read_log(self.log_path) if self.log_path else self.stderr_text()
        found: dict[str, tuple[str, int]] = {}
        for m in LISTENING_RE.finditer(text):
            name = m.group(1) or self.sub
            addr = m.group(2).strip("[]")
            found[name] = (addr, int(m.group(3)))
        return found

    def address(self, server: str | None = None) -> tuple[str, int]:
        if server is None:
            if len(self.servers) != 1:
                raise TestFailure(f"which server? {self.servers}")
            return next(iter(self.servers.values()))
        return self.servers[server]

    @property
    def port(self) -> int:
        return self.address()[1]

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Waits for the process to exit; its exit code, or None if still running."""
        try:
            self.exit_code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.exit_code

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit code (negative: killed by a signal)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self.wait(timeout) is None:
                self.killed = True
                self.proc.kill()
                self.proc.wait()
        self.exit_code = self.proc.returncode
        if self in _live:
            _live.remove(self)
        if not self._stderr.closed:
            self._stderr.close()
        return self.exit_code

    def cleanup(self) -> None:
        self.stop()
        if not os.environ.get("KAMAELIA_IT_KEEP"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> "Daemon":
        return self

    def __exit__(self, *exc) -> None:
        """Stops the daemon. Unless the test already failed, it also fails the
        test if the daemon needed SIGKILL, did not exit 0 on SIGTERM, or
        printed a sanitizer report: every test is also a clean-stop test."""
        code = None
        was_running = self.alive()
        try:
            code = self.stop()
        finally:
            problem = ""
            bad = self.sanitizer_reports()
            if bad:
                problem = f"sanitizer report in the daemon's output:\n{bad}"
            elif self.killed:
                problem = (f"the daemon did not exit within {STOP_TIMEOUT:.0f}s of SIGTERM and was killed "
                           f"(log tail:\n{self.tail(15)})")
            elif was_running and code != 0:
                problem = f"the daemon exited with {code} after SIGTERM (log tail:\n{self.tail(15)})"
            if exc[0] is not None:
                print(f"--- daemon log ({' '.join(self.argv[1:])}), exit {code} ---\n{self.tail()}", flush=True)
            self.cleanup()
            if problem and exc[0] is None:
                raise TestFailure(problem)

    # -- logs --------------------------------------------------------------
    @staticmethod
    def read_log(path: str) -> str:
        try:
            with open(path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stderr_text(self) -> str:
        return self.read_log(self.stderr_path)

    def log_text(self) -> str:
        text = self.stderr_text()
        if self.log_path:
            text += self.read_log(self.log_path)
        return text

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def sanitizer_reports(self) -> str:
        text = self.stderr_text()
        m = SANITIZER_RE.search(text)
        if not m:
            return ""
        start = text.rfind("\n", 0, max(0, m.start() - 200)) + 1
        return text[start:start + 6000]

    def wait_log(self, pattern: str, timeout: float = IO_TIMEOUT, count: int = 1) -> bool:
        """Waits until `pattern` (a regex) appears `count` times in the log."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(rx.findall(self.log_text())) >= count:
                return True
            time.sleep(0.05)
        return False

    def rss_kb(self) -> int | None:
        return rss_kb(self.proc.pid)

    # -- clients -----------------------------------------------------------
    def client(self, server: str | None = None, **kw) -> "Client":
        host, port = self.address(server)
        return Client(host, port, **kw)


def run(argv: list[str], timeout: float = IO_TIMEOUT, input: bytes | None = None, cwd: str | None = None,
        env_extra: str = "", env_vars: dict | None = None) -> subprocess.CompletedProcess:
    """Runs a short-lived command (a client, `kamaelia health`, a failing daemon) to completion.

    It runs in its own session; on timeout the whole group is killed.
    """
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=sanitizer_env(env_extra, env_vars),
                         start_new_session=True, preexec_fn=_pdeathsig)
    try:
        out, err = p.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        raise TestFailure(f"{argv} did not finish within {timeout}s\nstdout: {out!r}\nstderr: {err!r}")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


@atexit.register
def _stop_everything() -> None:
    for d in list(_live):
        try:
            d.cleanup()
        except Exception:
            pass


def _on_signal(sig, frame):
    _stop_everything()
    sys.exit(128 + sig)


for _s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_s, _on_signal)


# --------------------------------------------------------------------------
# clients


class Closed(Exception):
    """The server closed the connection (EOF or reset) while we waited for data."""


def _wait_io(sock: socket.socket, write: bool, timeout: float) -> bool:
    """Whether sock became readable (or writable) within timeout seconds."""
    with selectors.DefaultSelector() as sel:
        sel.register(sock, selectors.EVENT_WRITE if write else selectors.EVENT_READ)
        return bool(sel.select(max(timeout, 0)))


class Client:
    """A TCP client with line helpers. Every wait has a deadline."""

    def __init__(self, host: str, port: int, timeout: float = IO_TIMEOUT, rcvbuf: int | None = None,
                 source: str | None = None, connect: bool = True):
        self.host, self.port = host, port
        self.timeout = timeout
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source is not None:
            self.sock.bind((source, 0))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False
        self.reset = False
        if connect:
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
        self.sock.settimeout(None)

    @property
    def local_port(self) -> int:
        return self.sock.getsockname()[1]

    @property
    def name(self) -> str:
        """How the chat server names this client: ADDR:PORT."""
        a = self.sock.getsockname()
        return f"{a[0]}:{a[1]}"

    def fileno(self) -> int:
        return self.sock.fileno()

    # send() and _fill() may run on two threads at once (a writer thread
    # beside a reader): neither changes the socket's timeout (that flips
    # O_NONBLOCK under the other one, whose recv then fails with EAGAIN);
    # each waits with select and does one non-blocking call.
    def send(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + self.timeout
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout(f"send timed out after {self.timeout}s")
            if not _wait_io(self.sock, write=True, timeout=left):
                continue
            try:
                n = self.sock.send(view, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            view = view[n:]

    def send_line(self, line: str | bytes, ending: bytes = b"\r\n") -> None:
        if isinstance(line, str):
            line = line.encode()
        self.send(line + ending)

    def _fill(self, deadline: float) -> bool:
        """Reads once into buf. False on EOF/reset. Raises TestFailure at the deadline."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise TestFailure(f"timed out waiting for data (have {self.buf[-200:]!r})")
        while True:
            if not _wait_io(self.sock, write=False, timeout=left):
                raise TestFailure(f"timed out waiting for data (have {self.buf[-200:]!r})")
            try:
                data = self.sock.recv(65536, socket.MSG_DONTWAIT)
                break
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TestFailure(f"timed out waiting for data (have {self.buf[-200:]!r})") from None
            except ConnectionResetError:
                self.eof = self.reset = True
                return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_line(self, timeout: float | None = None) -> bytes:
        """One line including its ending (LF or CR LF). Raises Closed on EOF."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                return line
            if not self._fill(deadline):
                raise Closed(f"connection closed (pending {self.buf[:200]!r})")

    def read_exactly(self, n: int, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise Closed(f"connection closed after {len(self.buf)} of {n} bytes")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_until(self, token: bytes, timeout: float | None = None) -> bytes:
        """Everything up to and including `token`."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            i = self.buf.find(token)
            if i >= 0:
                out, self.buf = self.buf[:i + len(token)], self.buf[i + len(token):]
                return out
            if not self._fill(deadline):
                raise Closed(f"connection closed before {token!r} (pending {self.buf[-200:]!r})")

    def read_to_close(self, timeout: float | None = None, limit: int = 64 << 20) -> bytes:
        """Everything until the server closes (EOF or reset). TestFailure at the deadline."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while self._fill(deadline):
            if len(self.buf) > limit:
                raise TestFailure(f"more than {limit} bytes before the close")
        out, self.buf = self.buf, b""
        return out

    def closed_by_server(self, timeout: float | None = None) -> bool:
        """True if the server closes within the timeout (data before the close is discarded)."""
        try:
            self.read_to_close(timeout)
            return True
        except TestFailure:
            return False

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def close_all(clients) -> None:
    for c in clients:
        c.close()


def wait_readable_all(clients, predicate, timeout: float = IO_TIMEOUT) -> list:
    """Reads from many clients at once (epoll) until predicate(client) is true for every one.

    Returns the clients that did not get there before the deadline (empty on
    success). predicate looks at client.buf / client.eof and may consume buf.
    """
    pending = {c for c in clients if not predicate(c)}
    if not pending:
        return []
    sel = selectors.DefaultSelector()
    for c in pending:
        sel.register(c.sock, selectors.EVENT_READ, c)
    deadline = time.monotonic() + timeout
    try:
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in sel.select(min(left, 1.0)):
                c = key.data
                try:
                    data = c.sock.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    data = b""
                    c.reset = True
                if not data:
                    c.eof = True
                    sel.unregister(c.sock)
                    pending.discard(c)
                    continue
                c.buf += data
                if predicate(c):
                    sel.unregister(c.sock)
                    pending.discard(c)
    finally:
        sel.close()
    return list(pending)


def connection_refused_or_closed(host: str, port: int, timeout: float = IO_TIMEOUT) -> str:
    """How a connection attempt ends: 'refused' (connect failed), 'closed' (accepted and then
    closed without a byte), or 'open' (still open after the timeout, or data arrived)."""
    try:
        c = Client(host, port, timeout=timeout)
    except ConnectionRefusedError:
        return "refused"
    try:
        data = c.read_to_close(timeout)
        return "closed" if not data else "open"
    except TestFailure:
        return "open"
    finally:
        c.close()


# --------------------------------------------------------------------------
# the runner


class Tests:
    """A tiny test runner: @t.test functions, t.check/t.eq assertions, one summary line."""

    def __init__(self, suite: str):
        self.suite = suite
        self.tests: list = []
        ap = argparse.ArgumentParser(description=f"kamaelia integration tests: {suite}")
        ap.add_argument("--kamaelia", default=os.environ.get("KAMAELIA_BIN", "kamaelia"),
                        help="path of the kamaelia daemon")
        ap.add_argument("--only", action="append", default=[], help="run only tests whose name contains this")
        ap.add_argument("-v", "--verbose", action="store_true")
        self.args = ap.parse_args()
        self.kamaelia = os.path.abspath(self.args.kamaelia) if os.sep in self.args.kamaelia else (
            shutil.which(self.args.kamaelia) or self.args.kamaelia)
        self.failures: list[str] = []  # assertion messages of the test running now
        self.current = ""

    def test(self, fn):
        self.tests.append(fn)
        return fn

    # -- assertions (non-fatal: they collect; a test with any failure fails) --
    def check(self, ok: bool, what: str) -> bool:
        if not ok:
            self.failures.append(what)
            print(f"  FAIL {self.current}: {what}", flush=True)
        elif self.args.verbose:
            print(f"  ok   {self.current}: {what}", flush=True)
        return bool(ok)

    def eq(self, got, want, what: str) -> bool:
        return self.check(got == want, f"{what}: expected {_short(want)}, got {_short(got)}")

    def require(self, ok: bool, what: str) -> None:
        """A check that ends the test if it fails (later steps depend on it)."""
        if not self.check(ok, what):
            raise TestFailure(what)

    def note(self, text: str) -> None:
        print(f"  note {self.current}: {text}", flush=True)

    def main(self) -> None:
        if not os.path.exists(self.kamaelia):
            print(f"kamaelia binary not found: {self.kamaelia}")
            print("0 passed, 1 failed")
            sys.exit(1)
        passed = failed = 0
        failed_names = []
        for fn in self.tests:
            name = fn.__name__
            if self.args.only and not any(o in name for o in self.args.only):
                continue
            self.current = name
            self.failures = []
            t0 = time.monotonic()
            print(f"[ RUN ] {self.suite}.{name}", flush=True)
            try:
                fn(self.kamaelia)
            except TestFailure as e:
                if str(e) not in self.failures:
                    self.failures.append(str(e))
                    print(f"  FAIL {name}: {e}", flush=True)
            except Exception:
                tb = traceback.format_exc()
                self.failures.append(tb)
                print(f"  ERROR {name}:\n{tb}", flush=True)
            dt = time.monotonic() - t0
            if self.failures:
                failed += 1
                failed_names.append(name)
                print(f"[ FAIL] {self.suite}.{name} ({dt:.1f}s)", flush=True)
            else:
                passed += 1
                print(f"[  OK ] {self.suite}.{name} ({dt:.1f}s)", flush=True)
        _stop_everything()
        if failed_names:
            print(f"failed: {', '.join(failed_names)}")
        print(f"{passed} passed, {failed} failed", flush=True)
        sys.exit(0 if failed == 0 else 1)


def _short(v, n: int = 300) -> str:
    r = repr(v)
    return r if len(r) <= n else r[:n] + f"... ({len(r)} chars)"


# --------------------------------------------------------------------------
# chat helpers


def chat_line(sender: "Client", text: str | bytes, ending: bytes = b"\r\n") -> bytes:
    """What the chat server sends for `text` said by `sender`: 'ADDR:PORT says TEXT' + ending."""
    if isinstance(text, str):
        text = text.encode()
    return sender.name.encode() + b" says " + text + ending


def chat_sync(clients, sender: "Client | None" = None, token: str = "sync", timeout: float = 60.0) -> None:
    """Waits until every client is subscribed, and empties their buffers.

    A chat client hears only what is said after its connection's graph has
    subscribed, which happens a little after the TCP connect. So `sender`
    says 'TOKEN-i' (i = 0, 1, ...) until every other client has heard one,
    then 'TOKEN-done', and everything up to that line is discarded. The
    sender hears none of its own lines. Bounded by `timeout`; raises
    TestFailure if some client never hears anything.
    """
    sender = sender or clients[0]
    listeners = [c for c in clients if c is not sender]
    marker = f"{token}-".encode()
    deadline = time.monotonic() + timeout
    i = 0
    pending = list(listeners)
    while pending:
        if time.monotonic() > deadline:
            raise TestFailure(f"{len(pending)} of {len(listeners)} chat clients never heard '{token}-N'")
        sender.send_line(f"{token}-{i}")
        i += 1
        pending = wait_readable_all(pending, lambda c: marker in c.buf, timeout=min(1.0 + 0.002 * len(clients), 5.0))
    done = f" says {token}-done".encode()
    sender.send_line(f"{token}-done")
    left = wait_readable_all(listeners, lambda c: done in c.buf and c.buf.find(b"\n", c.buf.find(done)) >= 0,
                             timeout=max(5.0, deadline - time.monotonic()))
    if left:
        raise TestFailure(f"{len(left)} chat clients never heard '{token}-done'")
    for c in listeners:
        j = c.buf.find(b"\n", c.buf.find(done))
        c.buf = c.buf[j + 1:]


def wait_until(pred, timeout: float, what: str, step: float = 0.1):
    """Calls pred() until it returns something true (returned) or `timeout` passes (TestFailure)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TestFailure(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def healthz(port: int, host: str = "127.0.0.1") -> tuple[int, str]:
    """GET /healthz on a console port: (status, body)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=IO_TIMEOUT) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_healthz(port: int, status: int, timeout: float = 60.0) -> tuple[int, str]:
    """Polls /healthz until it answers `status` or `timeout` passes; the last answer."""
    deadline = time.monotonic() + timeout
    got = healthz(port)
    while got[0] != status and time.monotonic() < deadline:
        time.sleep(0.2)
        got = healthz(port)
    return got


def check_healthz_follows(t: "Tests", port: int, what: str, stop, start, reason_has: list[str],
                          reason_lacks: list[str] = ()) -> None:
    """/healthz is 200 with `what` up, 503 naming it (`reason_has`, none of
    `reason_lacks`) once `stop()` took it down, 200 again after `start()`."""
    t.eq(wait_healthz(port, 200), (200, "ok\n"), f"/healthz: 200 while {what} is up")
    stop()
    status, body = wait_healthz(port, 503)
    t.eq(status, 503, f"/healthz: 503 once {what} is down")
    t.check(all(w in body for w in reason_has), f"the reason names {what}: {body!r}")
    t.check(not any(w in body for w in reason_lacks), f"the reason keeps secrets out: {body!r}")
    start()
    t.eq(wait_healthz(port, 200), (200, "ok\n"), f"/healthz: 200 again once {what} is back")
