#!/usr/bin/env python3
"""The file multicaster through the real `kamaelia` binary: `mcast-send` and
`mcast-recv` on the loopback interface only (--interface 127.0.0.1, TTL 0),
each test on a free port of its own.

- A 10 MB random file arrives byte-exact (receiver started first, two passes).
- A receiver started after the first pass completes from the carousel.
- A receiver that cannot get everything times out, exits non-zero with the
  missing byte ranges, and writes nothing.
- Bad settings fail at start with a clear message.

Multicast on `lo` works without the MULTICAST link flag (the kernel loops
group traffic back for IP_MULTICAST_LOOP with TTL 0). A probe checks that
first; only if it fails, and only as root, the test runs
`ip link set lo multicast on` and says so (a note in the output).
"""

import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

t = harness.Tests("mcast")
IFACE = ["--interface", "127.0.0.1"]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def multicast_loopback_works() -> bool:
    """One datagram to the group through 127.0.0.1, TTL 0: does it come back?"""
    group = "224.168.2.9"
    port = free_udp_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as r, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            r.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            r.bind((group, port))
            r.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                         socket.inet_aton(group) + socket.inet_aton("127.0.0.1"))
            r.settimeout(2)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            s.sendto(b"probe", (group, port))
            return r.recv(16) == b"probe"
        except OSError:
            return False


def preflight():
    if multicast_loopback_works():
        return
    if os.geteuid() == 0 and shutil.which("ip"):
        subprocess.run(["ip", "link", "set", "lo", "multicast", "on"], check=False)
        print("  note: multicast on lo did not work; ran `ip link set lo multicast on` (root)", flush=True)
        if multicast_loopback_works():
            return
    print("multicast on the loopback interface does not work here (and cannot be enabled): "
          "set `ip link set lo multicast on` as root", flush=True)
    print("0 passed, 1 failed")
    sys.exit(1)


class Receiver:
    """`kamaelia mcast-recv` in the background, its output in files."""

    def __init__(self, k: str, outfile: str, port: int, *extra: str):
        self.dir = tempfile.mkdtemp(prefix="kamaelia_mcast_recv_")
        self.out_path = os.path.join(self.dir, "stdout")
        self.err_path = os.path.join(self.dir, "stderr")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.p = subprocess.Popen([k, "mcast-recv", outfile, "--port", str(port), *IFACE, *extra],
                                      stdout=out, stderr=err, env=harness.sanitizer_env(),
                                      preexec_fn=harness._pdeathsig)
        # It logs once it has joined the group: a sender may start then.
        deadline = time.monotonic() + harness.START_TIMEOUT
        while time.monotonic() < deadline and "listening on" not in self.stderr():
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        t.require("listening on" in self.stderr(), f"mcast-recv joined the group: {self.stderr()!r}")

    def stdout(self) -> str:
        with open(self.out_path, errors="replace") as f:
            return f.read()

    def stderr(self) -> str:
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def wait(self, timeout: float) -> int:
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise harness.TestFailure(f"mcast-recv did not finish within {timeout}s: {self.stderr()[-2000:]}")

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def random_file(dir: str, size: int) -> str:
    path = os.path.join(dir, f"in_{size}.bin")
    with open(path, "wb") as f:
        f.write(os.urandom(size))
    return path


def digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def no_sanitizer_reports(text: str, who: str):
    t.check(not harness.SANITIZER_RE.search(text), f"{who}: no sanitizer reports: {text[-3000:]}")


@t.test
def ten_megabytes_arrive_byte_exact(k):
    with tempfile.TemporaryDirectory(prefix="kamaelia_mcast_") as d:
        src = random_file(d, 10 * 1024 * 1024)
        dst = os.path.join(d, "out.bin")
        port = free_udp_port()
        rx = Receiver(k, dst, port, "--timeout", "300")
        try:
            tx = harness.run([k, "mcast-send", src, "--port", str(port), *IFACE, "--ttl", "0", "--rate", "10000000",
                              "--repeat", "2"], timeout=300)
            t.eq(tx.returncode, 0, f"mcast-send exit status ({tx.stderr[-2000:]!r})")
            t.check(b"15652 datagrams" in tx.stdout, f"two passes of 7826 datagrams went out: {tx.stdout!r}")
            rc = rx.wait(120)
            t.eq(rc, 0, f"mcast-recv exit status ({rx.stderr()[-2000:]!r})")
            t.check(os.path.exists(dst), "the file was written")
            if os.path.exists(dst):
                t.eq(os.path.getsize(dst), 10 * 1024 * 1024, "size")
                t.eq(digest(dst), digest(src), "the bytes (SHA-256)")
            t.check(re.search(r"10485760 bytes verified \(sha256 " + digest(src), rx.stdout()) is not None,
                    f"it reports the verified digest: {rx.stdout()!r}")
            t.check(not os.path.exists(dst + ".part"), "no partial file left")
            no_sanitizer_reports(rx.stderr(), "mcast-recv")
            no_sanitizer_reports(tx.stderr.decode(errors="replace"), "mcast-send")
        finally:
            rx.close()


@contextlib.contextmanager
def join_late(k, src, dst, rate, repeat, delay, timeout):
    """Starts mcast-send, then `delay` seconds later a receiver: yields (sender, receiver)."""
    port = free_udp_port()
    tx = subprocess.Popen([k, "mcast-send", src, "--port", str(port), *IFACE, "--rate", str(rate), "--repeat",
                           str(repeat)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=harness.sanitizer_env(), preexec_fn=harness._pdeathsig)
    rx = None
    try:
        time.sleep(delay)
        t.require(tx.poll() is None, "the sender is still running when the receiver starts")
        rx = Receiver(k, dst, port, "--timeout", str(timeout))
        yield tx, rx
    finally:
        if tx.poll() is None:
            tx.kill()
            tx.wait()
        if rx:
            rx.close()


@t.test
def late_receiver_completes_from_the_carousel(k):
    with tempfile.TemporaryDirectory(prefix="kamaelia_mcast_") as d:
        src = random_file(d, 4 * 1024 * 1024)
        dst = os.path.join(d, "late.bin")
        # Four passes at 4 MB/s: a pass a second (longer under a sanitizer);
        # the receiver starts once the first pass is over (or nearly).
        with join_late(k, src, dst, 4000000, 4, 1.5, 120) as (tx, rx):
            rc = rx.wait(150)
            t.eq(rc, 0, f"mcast-recv exit status ({rx.stderr()[-2000:]!r})")
            if os.path.exists(dst):
                t.eq(digest(dst), digest(src), "the late receiver's bytes (SHA-256)")
            out, err = tx.communicate(timeout=150)
            t.eq(tx.returncode, 0, f"mcast-send exit status ({err[-2000:]!r})")


@t.test
def timeout_reports_the_missing_ranges(k):
    with tempfile.TemporaryDirectory(prefix="kamaelia_mcast_") as d:
        size = 2 * 1024 * 1024
        src = random_file(d, size)
        dst = os.path.join(d, "partial.bin")
        # One pass only, four seconds long; the receiver joins a fifth of the way in.
        with join_late(k, src, dst, 500000, 1, 0.8, 7) as (tx, rx):
            rc = rx.wait(120)
            err = rx.stderr()
            t.eq(rc, 1, f"mcast-recv exit status on timeout ({err[-2000:]!r})")
            m = re.search(r"timed out after .*: missing (\d+) of (\d+) bytes in (\d+) ranges: (\d+)-(\d+)", err)
            t.require(m is not None, f"it reports the missing ranges: {err[-2000:]!r}")
            missing, total, _ranges, first, _end = (int(x) for x in m.groups())
            t.eq(total, size, "the file size it learnt from the packets")
            t.check(0 < missing < size, f"some but not all bytes are missing ({missing})")
            t.eq(first, 0, "the start of the file is missing (it joined late)")
            t.check(not os.path.exists(dst), "nothing is written without a verified file")
            t.check(not os.path.exists(dst + ".part"), "no partial file either")
            tx.communicate(timeout=120)
            t.eq(tx.returncode, 0, "mcast-send exit status")


@t.test
def a_carousel_until_stopped_ends_cleanly_on_a_signal(k):
    with tempfile.TemporaryDirectory(prefix="kamaelia_mcast_") as d:
        src = random_file(d, 100000)
        dst = os.path.join(d, "forever.bin")
        # --repeat 0 sends until stopped; a receiver joining any time completes.
        with join_late(k, src, dst, 1000000, 0, 0.5, 120) as (tx, rx):
            t.eq(rx.wait(150), 0, f"mcast-recv exit status ({rx.stderr()[-2000:]!r})")
            if os.path.exists(dst):
                t.eq(digest(dst), digest(src), "the bytes (SHA-256)")
            t.require(tx.poll() is None, "the carousel is still going")
            tx.send_signal(signal.SIGINT)
            out, err = tx.communicate(timeout=60)
            t.eq(tx.returncode, 0, f"SIGINT ends a carousel sent until stopped with 0 ({err[-1000:]!r})")
            t.check(b"interrupted" in out, f"it says so: {out!r}")
            no_sanitizer_reports(err.decode(errors="replace"), "mcast-send")


@t.test
def nothing_received_times_out(k):
    with tempfile.TemporaryDirectory(prefix="kamaelia_mcast_") as d:
        dst = os.path.join(d, "none.bin")
        rx = Receiver(k, dst, free_udp_port(), "--timeout", "1")
        rc = rx.wait(60)
        t.eq(rc, 1, "exit status")
        t.check("nothing received" in rx.stderr(), f"it says nothing came: {rx.stderr()[-500:]!r}")
        t.check(not os.path.exists(dst), "no file")


@t.test
def bad_settings_fail_at_start(k):
    with tempfile.TemporaryDirectory(prefix="kamaelia_mcast_") as d:
        src = random_file(d, 1000)
        r = harness.run([k, "mcast-send", src, "--group", "10.1.2.3", *IFACE])
        t.eq(r.returncode, 2, "a unicast group is refused")
        t.check(b"not a multicast group" in r.stderr, f"with a reason: {r.stderr!r}")
        r = harness.run([k, "mcast-send", os.path.join(d, "missing.bin"), *IFACE])
        t.eq(r.returncode, 2, "a missing file is refused")
        t.check(b"missing.bin" in r.stderr, f"naming the file: {r.stderr!r}")
        r = harness.run([k, "mcast-send", src, "--ttl", "300", *IFACE])
        t.check(r.returncode != 0, "a TTL over 255 is refused")
        r = harness.run([k, "mcast-recv", os.path.join(d, "x"), "--interface", "nonsense"])
        t.eq(r.returncode, 2, "a bad interface is refused")
        t.check(b"bad interface" in r.stderr, f"with a reason: {r.stderr!r}")
        r = harness.run([k, "mcast-send", src, "--datagram-size", "40", *IFACE])
        t.eq(r.returncode, 2, "a datagram too small for the header is refused")


preflight()
if __name__ == "__main__":  # the hostile suite imports its helpers
    t.main()
