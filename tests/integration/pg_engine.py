"""A throwaway PostgreSQL 15 cluster for the integration tests: initdb and
postgres as `nobody` (when root) in a temporary directory, on a free
loopback port, stopped by pid (SIGINT: a fast shutdown, as an administrator's
restart would)."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import harness


def bindir() -> str:
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=30).stdout.strip()
        if out and os.path.exists(os.path.join(out, "initdb")):
            return out
    except (OSError, subprocess.SubprocessError):
        pass
    return "/usr/lib/postgresql/15/bin"


class Postgres:
    """initdb + postgres as `nobody` (when root) in a temp dir, on a free loopback port."""

    def __init__(self):
        self.bin = bindir()
        self.dir = tempfile.mkdtemp(prefix="kamaelia-it-pg-")
        self.as_user = os.getuid() == 0
        if self.as_user:
            shutil.chown(self.dir, "nobody", "nogroup")
        os.chmod(self.dir, 0o700)
        self.port = harness.free_port()
        self.proc = None
        r = subprocess.run(self.prefix() + [os.path.join(self.bin, "initdb"), "-D", self.dir + "/data", "-U", "kamaelia",
                                            "--auth=trust", "-E", "UTF8"], capture_output=True, cwd="/", timeout=300)
        if r.returncode != 0:
            raise harness.TestFailure("initdb failed: " + r.stderr.decode(errors="replace")[-500:])
        self.start()

    def prefix(self):
        return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] if self.as_user else []

    def start(self):
        log = open(os.path.join(self.dir, "postgres.log"), "ab")
        self.proc = subprocess.Popen(self.prefix() + [os.path.join(self.bin, "postgres"), "-D", self.dir + "/data", "-p",
                                                      str(self.port), "-k", self.dir, "-c", "listen_addresses=127.0.0.1",
                                                      "-c", "synchronous_commit=on"],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/",
                                     preexec_fn=harness._pdeathsig)
        deadline = time.monotonic() + harness.START_TIMEOUT
        while time.monotonic() < deadline:
            r = subprocess.run([os.path.join(self.bin, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                               cwd="/", timeout=30)
            if r.returncode == 0:
                return
            if self.proc.poll() is not None:
                raise harness.TestFailure("postgres exited at start")
            time.sleep(0.1)
        raise harness.TestFailure("postgres did not start")

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
        return f"postgresql://{auth}127.0.0.1:{self.port}/{db}"

    def psql(self, sql, db="postgres"):
        """`psql -At -c SQL`: the CompletedProcess (stdout: the rows, one a line)."""
        return subprocess.run([os.path.join(self.bin, "psql"), "-q", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h",
                               "127.0.0.1", "-p", str(self.port), "-U", "kamaelia", "-d", db, "-c", sql],
                              capture_output=True, cwd="/", timeout=60)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def available(t) -> bool:
    """False (with a loud note in `t`'s log) where the server binaries are missing."""
    if not os.path.exists(os.path.join(bindir(), "postgres")):
        t.note("PostgreSQL server binaries are not installed (scripts/install-deps installs them): SKIPPED")
        return False
    return True
