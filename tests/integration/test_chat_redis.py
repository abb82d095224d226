#!/usr/bin/env python3
"""`kamaelia chat --backplane redis://...`: two chat daemons sharing one chat
through a real redis-server (started here on a free loopback port, stopped by
pid).

A line said on one daemon reaches the clients of both, once each; a plain
`redis-cli PUBLISH` reaches every client; the password comes from
REDISCLI_AUTH or a 0600 file and never shows in the logs; the `backplane`
config key works like the flag; Redis killed mid-chat: local delivery goes on,
the outage is logged once, both daemons link again when it is back and the
chat goes on. Redis alive but stopped (SIGSTOP) while many MiB are said:
local chat goes on, the daemon's memory stays bounded, what could not be
forwarded is counted on /metrics, and after SIGCONT forwarding resumes.
"""

import contextlib
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from engines import REDIS, Redis  # noqa: E402
from harness import Daemon, chat_line, chat_sync  # noqa: E402

t = harness.Tests("chat_redis")


@contextlib.contextmanager
def two_daemons():
    """Redis, daemons A and B bridged through it, clients a1, a2 on A and b1 on B (synced)."""
    with Redis() as r, Daemon(k_bin(), "chat", "--backplane", r.url()) as a, \
            Daemon(k_bin(), "chat", "--backplane", r.url()) as b:
        t.require(linked(a) and linked(b), "both daemons bridged")
        a1, a2, b1 = a.client(), a.client(), b.client()
        try:
            chat_sync([a1, a2, b1])
            yield r, a, b, a1, a2, b1
        finally:
            for c in (a1, a2, b1):
                c.close()


def k_bin() -> str:
    return t.kamaelia


def linked(d: Daemon, count: int = 1) -> bool:
    return d.wait_log("bridged to Redis", count=count) if count == 1 else d.wait_log("linked again", count=count - 1)


def said(listener, sender, text) -> bool:
    """Reads lines until `sender` said `text` (the others are skipped)."""
    want = chat_line(sender, text)
    while True:
        if listener.read_line() == want:
            return True


def skip_without_redis() -> bool:
    if REDIS is None:
        t.note("redis-server is not installed (scripts/install-deps installs it): SKIPPED")
        return True
    return False


@t.test
def two_daemons_one_chat(k):
    if skip_without_redis():
        return
    with two_daemons() as (r, a, b, a1, a2, b1):
        a1.send_line("hello from A")
        t.check(said(b1, a1, "hello from A"), "B's client hears A's")
        t.check(said(a2, a1, "hello from A"), "A's other client hears it")
        b1.send_line("hi, this is B")
        t.check(said(a1, b1, "hi, this is B"), "A's clients hear B's")
        t.check(said(a2, b1, "hi, this is B"), "both of them")
        # Exactly once each: a marker after the lines, and nothing else between.
        b1.send_line("marker")
        t.eq(a2.read_line(), chat_line(b1, "marker"), "no duplicate before the marker")
        # Order per publisher across the hosts.
        for i in range(200):
            a1.send_line(f"n{i}")
        for i in range(200):
            t.require(b1.read_line() == chat_line(a1, f"n{i}"), f"line {i} in order on B")
        # Other programs may publish on the channel (no envelope).
        t.eq(r.cli("PUBLISH", "CHAT", "from redis-cli"), "2", "two bridges subscribed")
        for c in (a1, a2, b1):
            while c.read_line().rstrip(b"\r\n") != b"from redis-cli":
                pass  # what was said before it, not read yet
        # ... once each: the next line is the next thing said.
        b1.send_line("after the plain one")
        for c in (a1, a2):
            t.eq(c.read_line(), chat_line(b1, "after the plain one"), "the plain payload came once")


@t.test
def password_from_env_and_file_never_logged(k):
    if skip_without_redis():
        return
    secret = "s3cret-for-the-test"
    with Redis(password=secret) as r:
        tmp = tempfile.mkdtemp(prefix="kamaelia-it-redispw-")
        try:
            pw = os.path.join(tmp, "redis.pw")
            with open(pw, "w") as f:
                f.write(secret + "\n")
            os.chmod(pw, 0o600)
            os.environ["REDISCLI_AUTH"] = secret
            try:
                a = Daemon(k, "chat", "--backplane", r.url())
            finally:
                del os.environ["REDISCLI_AUTH"]
            with a, Daemon(k, "chat", "--backplane", r.url() + "?password-file=" + pw) as b:
                t.require(linked(a) and linked(b), "linked with the password from env and from the file")
                c1, c2 = a.client(), b.client()
                chat_sync([c1, c2])
                c1.send_line("authenticated")
                t.check(said(c2, c1, "authenticated"), "the chat goes through")
                c1.close()
                c2.close()
                t.check(secret not in a.stderr_text() and secret not in b.stderr_text(), "password not in the logs")
            # A file others may read is refused at start-up.
            os.chmod(pw, 0o644)
            d = Daemon(k, "chat", "--backplane", r.url() + "?password-file=" + pw, expect_servers=0)
            t.check(d.wait() not in (0, None), "a world-readable password file is refused")
            t.check("chmod 600" in d.stderr_text(), "and it says why")
            d.cleanup()
            # A wrong password: the chat still serves locally, the outage is logged once.
            os.environ["REDISCLI_AUTH"] = "wrong-one"
            try:
                w = Daemon(k, "chat", "--backplane", r.url())
            finally:
                del os.environ["REDISCLI_AUTH"]
            with w:
                t.check(w.wait_log("local delivery goes on"), "the refusal is logged")
                time.sleep(1.0)
                t.eq(w.log_text().count("local delivery goes on"), 1, "once per outage")
                x, y = w.client(), w.client()
                chat_sync([x, y])
                x.send_line("local only")
                t.check(said(y, x, "local only"), "local delivery goes on")
                t.check("wrong-one" not in w.stderr_text(), "the wrong password is not logged either")
                x.close()
                y.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


@t.test
def backplane_config_key(k):
    if skip_without_redis():
        return
    with Redis() as r:
        tmp = tempfile.mkdtemp(prefix="kamaelia-it-redisconf-")
        try:
            cfg = os.path.join(tmp, "kamaelia.conf")
            with open(cfg, "w") as f:
                f.write(f"[chat]\nbackplane = {r.url()}/0?channel=ROOM\n")
            with Daemon(k, "chat", "--config", cfg) as a, Daemon(k, "chat", "--backplane", r.url() + "?channel=ROOM") as b:
                t.require(linked(a) and linked(b), "config key and flag both bridge")
                c1, c2 = a.client(), b.client()
                chat_sync([c1, c2])
                c2.send_line("via ROOM")
                t.check(said(c1, c2, "via ROOM"), "same channel from the config file")
                c1.close()
                c2.close()
            bad = os.path.join(tmp, "bad.conf")
            with open(bad, "w") as f:
                f.write("[chat]\nbackplane = http://nowhere\n")
            d = Daemon(k, "chat", "--config", bad, expect_servers=0)
            t.check(d.wait() not in (0, None), "a bad URL is a start-up error")
            d.cleanup()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


@t.test
def healthz_follows_redis(k):
    if skip_without_redis():
        return
    with Redis() as r, Daemon(k_bin(), "chat", "--backplane", r.url(), "--console", "0", expect_servers=2) as d:
        t.require(linked(d), "bridged")
        _, cport = d.address("console")

        def back():
            r.start()
            t.require(d.wait_log("linked again"), "linked again")

        harness.check_healthz_follows(t, cport, "the Redis link", r.kill, back, ["not linked to Redis", str(r.port)])


@t.test
def redis_restarted_mid_chat(k):
    if skip_without_redis():
        return
    with two_daemons() as (r, a, b, a1, a2, b1):
        a1.send_line("before")
        t.check(said(b1, a1, "before"), "chat through Redis")
        r.kill()
        t.require(a.wait_log("local delivery goes on") and b.wait_log("local delivery goes on"), "outage logged")
        a1.send_line("during")
        t.check(said(a2, a1, "during"), "local delivery goes on while Redis is down")
        time.sleep(1.0)
        t.eq(a.log_text().count("local delivery goes on"), 1, "logged once per outage")
        r.start()
        t.require(a.wait_log("linked again") and b.wait_log("linked again"), "both link again")
        t.check("messages not forwarded" in a.log_text(), "the loss is counted in the log")
        # The link may come back on one side first: say things until B hears.
        deadline = time.monotonic() + harness.IO_TIMEOUT
        heard = False
        i = 0
        while not heard and time.monotonic() < deadline:
            a1.send_line(f"after-{i}")
            i += 1
            try:
                line = b1.read_line(timeout=0.5)
            except harness.TestFailure:
                continue
            heard = line.startswith(a1.name.encode() + b" says after-")
        t.check(heard, "the chat goes on after the restart")
        b1.send_line("and back")
        t.check(said(a1, b1, "and back"), "both ways")


def metric(port: int, name: str, labels: str = "") -> float:
    """The value of the first sample `name{...labels...}` on /metrics (0 if absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=harness.IO_TIMEOUT) as r:
        text = r.read().decode()
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if m and m.group(1) == name and labels in (m.group(2) or ""):
            return float(m.group(3))
    return 0.0


class RawSubscriber:
    """SUBSCRIBE on a plain socket (no hiredis, no redis-cli): what Redis publishes on `channel`."""

    def __init__(self, port: int, channel: str):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=harness.IO_TIMEOUT)
        self.sock.sendall(f"SUBSCRIBE {channel}\r\n".encode())
        self.buf = b""
        t.require(self.wait_for(b"subscribe"), "the raw subscriber is subscribed")

    def wait_for(self, token: bytes, timeout: float = harness.IO_TIMEOUT) -> bool:
        deadline = time.monotonic() + timeout
        while token not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 20)
            except socket.timeout:
                return False
            if not data:
                return False
            # Keep the tail only: a token cannot straddle more than it.
            self.buf = (self.buf + data)[-(1 << 16):]
        return True

    def close(self):
        self.sock.close()


@t.test
def packs_and_the_flag_that_turns_them_off(k):
    """By default a daemon publishes to Redis in packs (\\0KB2); with
    --backplane-pack-bytes 0 one \\0KB1 message a line (for a channel shared
    with daemons from before packs). The two chat with each other in order
    either way; a bad value stops the daemon at start-up."""
    if skip_without_redis():
        return
    with Redis() as r:
        with Daemon(k, "chat", "--backplane", r.url()) as a, \
                Daemon(k, "chat", "--backplane", r.url(), "--backplane-pack-bytes", "0") as b:
            t.require(linked(a) and linked(b), "both bridged")
            sub = RawSubscriber(r.port, "CHAT")
            a1, b1 = a.client(), b.client()
            try:
                chat_sync([a1, b1])
                for i in range(300):
                    a1.send_line(f"pa{i}")
                for i in range(300):
                    t.require(b1.read_line() == chat_line(a1, f"pa{i}"), f"A's line {i} in order on B")
                t.check(sub.wait_for(b"\x00KB2"), "A publishes packs")
                t.check(b"\x00KB1" not in sub.buf, "and nothing in the one-message envelope")
                for i in range(300):
                    b1.send_line(f"pb{i}")
                for i in range(300):
                    t.require(a1.read_line() == chat_line(b1, f"pb{i}"), f"B's line {i} in order on A")
                t.check(sub.wait_for(b"\x00KB1"), "B publishes one message a PUBLISH")
            finally:
                a1.close()
                b1.close()
                sub.close()
        tmp = tempfile.mkdtemp(prefix="kamaelia-it-chat-pack-")
        try:
            bad = harness.run([k, "chat", "--backplane", r.url(), "--backplane-pack-bytes", "10", "--port", "0",
                               "--bind", "127.0.0.1", "--data-dir", tmp])
            t.eq(bad.returncode, 2, "a pack bound of 10 bytes is refused")
            t.check(b"backplane-pack-bytes must be 0" in bad.stderr, f"naming the setting: {bad.stderr[-200:]!r}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


@t.test
def redis_stopped_chat_goes_on_bounded(k):
    """SIGSTOP: Redis alive, reading nothing. Two local clients push 24 MiB at
    each other; the bridge may keep only --backplane-pending-bytes unanswered."""
    if skip_without_redis():
        return
    bound = 1 << 20
    # A small ASan quarantine (in an ASan build): RSS then measures the daemon, not freed lines.
    asan = "quarantine_size_mb=4:thread_local_quarantine_size_kb=64"
    with Redis() as r, Daemon(k, "chat", "--backplane", r.url(), "--backplane-pending-bytes", str(bound),
                              "--metrics-port", "0", expect_servers=2, env_extra=asan) as d:
        t.require(linked(d), "bridged")
        _, mport = d.address("metrics")
        sub = RawSubscriber(r.port, "CHAT")
        a1, a2 = d.client("chat"), d.client("chat")
        try:
            chat_sync([a1, a2])
            filler = "x" * 4000
            # Warm up (buffers, allocator) before the baseline.
            for i in range(64):
                a1.send_line(f"warm-{i} {filler}")
            for i in range(64):
                t.require(a2.read_line() == chat_line(a1, f"warm-{i} {filler}"), "warm-up heard")
            t.require(sub.wait_for(b"warm-63"), "Redis had the warm-up")
            base = d.rss_kb()
            t.eq(metric(mport, "kamaelia_drops_total", 'reason="redis"'), 0.0, "nothing dropped while Redis reads")

            os.kill(r.proc.pid, signal.SIGSTOP)
            try:
                peak, mid = base, None
                rounds, per_round = 192, 32  # 192 x 32 x 4 KB: 24 MiB
                for n in range(rounds):
                    for i in range(per_round):
                        a1.send_line(f"s{n}-{i} {filler}")
                    for i in range(per_round):
                        t.require(a2.read_line() == chat_line(a1, f"s{n}-{i} {filler}"), f"line {n}-{i} heard locally")
                    if n % 16 == 0:
                        a2.send_line(f"back {n}")  # and the other way
                        t.require(a1.read_line() == chat_line(a2, f"back {n}"), "a1 hears a2 while Redis is stopped")
                        peak = max(peak, d.rss_kb())
                    if n == rounds // 2:
                        mid = d.rss_kb()
                peak = max(peak, d.rss_kb())
                drops = metric(mport, "kamaelia_drops_total", 'reason="redis"')
                pending = metric(mport, "kamaelia_backplane_redis_pending_bytes")
                t.note(f"RSS {base} KiB before, {mid} KiB half-way, peak {peak} KiB while stopped; "
                       f"{int(drops)} lines dropped, {int(pending)} bytes unanswered")
                t.check(drops > rounds * per_round / 2, "most of the flood was dropped and counted")
                t.check(pending <= bound + 8192, f"unanswered bytes within the bound ({pending})")
                # 24 MiB went through the daemon; what it holds for Redis is 1 MiB. (Before the
                # bound, main's daemon grew 19 MiB here, 9.8 MiB of it in the second half.)
                t.check(peak - base < 12 * 1024, f"RSS grew {peak - base} KiB (< 12 MiB)")
                t.check(peak - mid < 4 * 1024, f"RSS grew {peak - mid} KiB in the second half (< 4 MiB)")
                t.check(d.wait_log("does not answer PUBLISH"), "the stall is logged")
                t.eq(metric(mport, "kamaelia_backplane_redis_linked"), 1.0, "still linked (alive, only stopped)")
            finally:
                os.kill(r.proc.pid, signal.SIGCONT)
            t.require(d.wait_log("does not answer PUBLISH: recovered"), "the end of the stall is logged")
            starts = [ln for ln in d.log_text().splitlines()
                      if "does not answer PUBLISH: local messages dropped" in ln and "times in the last" not in ln]
            t.eq(len(starts), 1, "the stall is logged once")
            # Forwarding resumes by itself.
            harness.wait_until(lambda: metric(mport, "kamaelia_backplane_redis_pending_bytes") == 0, 60,
                               "the window to drain")
            before = metric(mport, "kamaelia_backplane_redis_forwarded_total")
            a1.send_line("after the stop")
            t.require(a2.read_line() == chat_line(a1, "after the stop"), "local")
            t.check(sub.wait_for(b"after the stop"), "Redis publishes again after SIGCONT")
            harness.wait_until(lambda: metric(mport, "kamaelia_backplane_redis_forwarded_total") > before, 30,
                               "the forwarded counter to move")
        finally:
            a1.close()
            a2.close()
            sub.close()


t.main()
