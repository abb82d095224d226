#!/usr/bin/env python3
"""Forged multicast datagrams against `kamaelia mcast-recv` (issue 14, defect 4).

Loopback only (--interface 127.0.0.1, TTL 0), a free port per test. The
forged datagrams carry a valid CRC-32C, so they pass the damage check and
reach the file logic:
- a 4 GiB file of 1-byte chunks: the receiver's memory stays small (it grew
  by ~527 MB before), it does not walk 2^32 packets, and the real file sent
  next still arrives;
- a file over --max-file-size is ignored;
- a stray datagram of another file id, sent before the real sender starts,
  does not make the receiver ignore the real transfer;
- with --file-id only that file is taken; a bad --file-id is refused.
"""

import hashlib
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile_common import harness, sanitized  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import test_mcast as base  # noqa: E402  (its Receiver and helpers; its own tests do not run on import)

t = harness.Tests("hostile_mcast")
base.t = t  # the helpers report through this suite
GROUP = "224.168.2.9"

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz"))
from mcast_seeds import packet as datagram  # noqa: E402  (an encoder written apart from the C++ one)


def send_datagrams(port: int, dgrams):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        for d in dgrams:
            s.sendto(d, (GROUP, port))
            time.sleep(0.001)


def send_real(k, src, port, repeat=2):
    tx = harness.run([k, "mcast-send", src, "--port", str(port), "--interface", "127.0.0.1", "--ttl", "0",
                      "--rate", "4000000", "--repeat", str(repeat)], timeout=300)
    t.eq(tx.returncode, 0, f"mcast-send exit status ({tx.stderr[-2000:]!r})")
    return tx


def expect_real_file(rx, src, dst, what="the real file arrives"):
    rc = rx.wait(120)
    t.eq(rc, 0, f"{what} ({rx.stderr()[-2000:]!r})")
    if os.path.exists(dst):
        t.eq(base.digest(dst), base.digest(src), "its bytes")


def file_id_of(path):
    with open(path, "rb") as f:
        return int.from_bytes(hashlib.sha256(f.read()).digest()[:4], "big")


@t.test
def a_forged_4gib_file_of_one_byte_chunks_costs_nothing(k):
    base.preflight()
    with tempfile.TemporaryDirectory(prefix="kamaelia_hostile_mcast_") as d:
        src = base.random_file(d, 1024 * 1024)
        dst = os.path.join(d, "out.bin")
        port = base.free_udp_port()
        rx = base.Receiver(k, dst, port, "--timeout", "240")
        try:
            rss0 = harness.rss_kb(rx.p.pid)
            sha = os.urandom(32)
            send_datagrams(port, [datagram(0xBAD, seq, 4 << 30, 1, b"x", sha) for seq in (0, 7, 1 << 31, (1 << 32) - 1)])
            time.sleep(1)
            rss1 = harness.rss_kb(rx.p.pid)
            t.note(f"receiver RSS {rss0} KiB before, {rss1} KiB after the forged 4 GiB file")
            if not sanitized(k):
                t.check(rss1 - rss0 < 32 * 1024, f"RSS grew by {rss1 - rss0} KiB (< 32 MiB; was ~527 MB)")
            send_real(k, src, port)
            expect_real_file(rx, src, dst, "the real file still arrives")
        finally:
            rx.close()


@t.test
def an_announced_size_over_max_file_size_is_ignored(k):
    with tempfile.TemporaryDirectory(prefix="kamaelia_hostile_mcast_") as d:
        src = base.random_file(d, 200_000)
        dst = os.path.join(d, "out.bin")
        port = base.free_udp_port()
        rx = base.Receiver(k, dst, port, "--timeout", "20", "--max-file-size", "100000")
        try:
            send_real(k, src, port, repeat=1)
            rc = rx.wait(120)
            t.eq(rc, 1, "it times out: the only file is too big")
            t.check("nothing received" in rx.stderr(), f"and says nothing was taken: {rx.stderr()[-500:]!r}")
            t.check(not os.path.exists(dst), "no file written")
        finally:
            rx.close()


@t.test
def a_stray_datagram_sent_first_does_not_capture_the_receiver(k):
    with tempfile.TemporaryDirectory(prefix="kamaelia_hostile_mcast_") as d:
        src = base.random_file(d, 2 * 1024 * 1024)
        dst = os.path.join(d, "out.bin")
        port = base.free_udp_port()
        rx = base.Receiver(k, dst, port, "--timeout", "240")
        try:
            send_datagrams(port, [datagram(0x5742A7, 0, 10_000_000, 1340, b"s" * 1340, os.urandom(32))])
            send_real(k, src, port)
            expect_real_file(rx, src, dst)
        finally:
            rx.close()


@t.test
def with_file_id_only_that_file_is_taken(k):
    with tempfile.TemporaryDirectory(prefix="kamaelia_hostile_mcast_") as d:
        src = base.random_file(d, 300_000)
        other = base.random_file(d, 100_000)
        dst = os.path.join(d, "out.bin")
        port = base.free_udp_port()
        rx = base.Receiver(k, dst, port, "--timeout", "240", "--file-id", f"{file_id_of(src):08x}")
        try:
            send_real(k, other, port)  # complete, valid, but not the one asked for
            send_real(k, src, port)
            expect_real_file(rx, src, dst, "the wanted file arrives, not the other one")
        finally:
            rx.close()
        bad = harness.run([k, "mcast-recv", dst, "--port", str(port), "--interface", "127.0.0.1", "--file-id", "xyz"])
        t.eq(bad.returncode, 2, "a bad --file-id is refused")
        t.check(b"--file-id" in bad.stderr, f"with a clear message: {bad.stderr!r}")


if __name__ == "__main__":
    t.main()
