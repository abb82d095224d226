"""The real engines the integration tests start themselves: a redis-server and a
throwaway PostgreSQL 15 cluster, each in a temporary directory, stopped by pid.

By default they listen on a free loopback port of this host. Given `netns`
(an `ip netns` name) and `host` (an address of that namespace), they run in
that network namespace and listen there (the two-host test's services host).
PostgreSQL refuses to run as root: as root, initdb and postgres run as
`nobody` (setpriv) on a directory that user owns.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile

import harness

REDIS = shutil.which("redis-server")


def in_netns(netns: str | None) -> list[str]:
    """The argv prefix that runs a command in network namespace `netns` (none for this one)."""
    return ["ip", "netns", "exec", netns] if netns else []


def port_open(host: str, port: int, netns: str | None = None) -> bool:
    """True if a TCP connection to host:port succeeds (from inside `netns` when given)."""
    if not netns:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return True
        except OSError:
            return False
    r = subprocess.run(in_netns(netns) + ["nc", "-z", "-w", "2", host, str(port)], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=harness.IO_TIMEOUT)
    return r.returncode == 0


def started(proc: subprocess.Popen, ready, what: str) -> None:
    """Waits until ready() is true; TestFailure if `proc` exits first or it takes START_TIMEOUT."""
    def up():
        if proc.poll() is not None:
            raise harness.TestFailure(f"{what} exited at start")
        return ready()
    harness.wait_until(up, harness.START_TIMEOUT, f"{what} to start", step=0.05)


class _Stopped:
    """`with` stops the engine (close()) whatever happened."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Redis(_Stopped):
    """A redis-server of our own: free loopback port (or `host` in `netns`), temp dir, stopped by pid."""

    def __init__(self, password: str = "", port: int | None = None, host: str = "127.0.0.1",
                 netns: str | None = None):
        self.password = password
        self.host = host
        self.netns = netns
        self.port = port or harness.free_port()
        self.dir = tempfile.mkdtemp(prefix="kamaelia-it-redis-")
        self.proc = None
        self.start()

    def start(self):
        argv = [REDIS, "--port", str(self.port), "--bind", self.host, "--save", "", "--appendonly", "no",
                "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log"), "--daemonize", "no"]
        if self.password:
            argv += ["--requirepass", self.password]
        self.proc = subprocess.Popen(in_netns(self.netns) + argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=harness._pdeathsig)
        started(self.proc, lambda: port_open(self.host, self.port, self.netns), "redis-server")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()  # as a crash: no goodbye to the clients
            self.proc.wait(timeout=harness.STOP_TIMEOUT)
        self.proc = None

    def cli(self, *args: str) -> str:
        env = dict(os.environ)
        if self.password:
            env["REDISCLI_AUTH"] = self.password
        r = subprocess.run(in_netns(self.netns) + ["redis-cli", "-h", self.host, "-p", str(self.port), *args], env=env,
                           capture_output=True, timeout=harness.IO_TIMEOUT)
        return r.stdout.decode(errors="replace").strip()

    def url(self, auth: str = "") -> str:
        return f"redis://{auth}{self.host}:{self.port}"

    def close(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def pg_bindir() -> str:
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=30).stdout.strip()
        if out and os.path.exists(os.path.join(out, "initdb")):
            return out
    except (OSError, subprocess.SubprocessError):
        pass
    return "/usr/lib/postgresql/15/bin"


def postgres_installed() -> bool:
    return os.path.exists(os.path.join(pg_bindir(), "postgres"))


def postgres_available(t) -> bool:
    """False (with a loud note in `t`'s log) where the server binaries are missing."""
    if not postgres_installed():
        t.note("PostgreSQL server binaries are not installed (scripts/install-deps installs them): SKIPPED")
        return False
    return True


class Postgres(_Stopped):
    """initdb + postgres as `nobody` (when root) in a temp dir, on a free loopback port
    (or on `host` in `netns`, trusting the clients of `allow`, a CIDR)."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", netns: str | None = None,
                 allow: str | None = None):
        self.bin = pg_bindir()
        self.host = host
        self.netns = netns
        self.dir = tempfile.mkdtemp(prefix="kamaelia-it-pg-")
        self.as_user = os.getuid() == 0
        if self.as_user:
            shutil.chown(self.dir, "nobody", "nogroup")
        os.chmod(self.dir, 0o700)
        self.port = port or harness.free_port()
        self.proc = None
        r = subprocess.run(self.prefix() + [os.path.join(self.bin, "initdb"), "-D", self.dir + "/data", "-U", "kamaelia",
                                            "--auth=trust", "-E", "UTF8"], capture_output=True, cwd="/", timeout=300)
        if r.returncode != 0:
            raise harness.TestFailure("initdb failed: " + r.stderr.decode(errors="replace")[-500:])
        if allow:
            with open(self.dir + "/data/pg_hba.conf", "a") as f:
                f.write(f"host all all {allow} trust\n")
        self.start()

    def prefix(self):
        return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] if self.as_user else []

    def start(self):
        log = open(os.path.join(self.dir, "postgres.log"), "ab")
        self.proc = subprocess.Popen(in_netns(self.netns) + self.prefix() +
                                     [os.path.join(self.bin, "postgres"), "-D", self.dir + "/data", "-p",
                                      str(self.port), "-k", self.dir, "-c", f"listen_addresses={self.host}",
                                      "-c", "synchronous_commit=on"],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/",
                                     preexec_fn=harness._pdeathsig)
        isready = in_netns(self.netns) + [os.path.join(self.bin, "pg_isready"), "-q", "-h", self.host,
                                          "-p", str(self.port)]
        started(self.proc, lambda: subprocess.run(isready, cwd="/", timeout=30).returncode == 0, "postgres")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=harness.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def url(self, db="postgres", password=""):
        auth = f"kamaelia:{password}@" if password else "kamaelia@"
        return f"postgresql://{auth}{self.host}:{self.port}/{db}"

    def psql(self, sql, db="postgres"):
        """`psql -At -c SQL`: the CompletedProcess (stdout: the rows, one a line)."""
        return subprocess.run(in_netns(self.netns) + [os.path.join(self.bin, "psql"), "-q", "-X", "-At", "-v",
                                                      "ON_ERROR_STOP=1", "-h", self.host, "-p", str(self.port),
                                                      "-U", "kamaelia", "-d", db, "-c", sql],
                              capture_output=True, cwd="/", timeout=60)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class SmtpSink(_Stopped):
    """Postfix's smtp-sink (as `nobody` when root) on `port` of `host` (in `netns` when given),
    dumping every message into a file of its own in a temporary directory."""

    def __init__(self, port: int, host: str = "127.0.0.1", netns: str | None = None):
        self.dir = tempfile.mkdtemp(prefix="kamaelia-it-sink-")
        self.port = port
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            os.chmod(self.dir, 0o777)
        dump = os.path.join(self.dir, "%Y%m%d%H%M%S.")
        self.proc = subprocess.Popen(in_netns(netns) + ["smtp-sink", *user, "-d", dump, f"{host}:{port}", "64"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=harness._pdeathsig)
        started(self.proc, lambda: port_open(host, port, netns), "smtp-sink")

    def dumps(self) -> list[bytes]:
        out = []
        for name in sorted(os.listdir(self.dir)):
            with open(os.path.join(self.dir, name), "rb") as f:
                out.append(f.read())
        return out

    def has(self, token: str) -> bool:
        """True if some message holds `token`."""
        return any(token.encode() in m for m in self.dumps())

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
