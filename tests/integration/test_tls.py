#!/usr/bin/env python3
"""TLS: `kamaelia greeter --tls-cert C --tls-key K` with real TLS clients.

`openssl s_client` and Python's ssl module talk to the greeter over TLS (a
throw-away self-signed certificate made here with `openssl req`); a
clear-text client on the TLS port is closed without disturbing the others;
a missing or mismatched key stops the daemon at start with a message naming
the file.
"""

import os
import socket
import ssl
import sys
import subprocess
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon  # noqa: E402

t = harness.Tests("tls")
_tmp = tempfile.TemporaryDirectory(prefix="kamaelia-tls-")
CERT = os.path.join(_tmp.name, "cert.pem")
KEY = os.path.join(_tmp.name, "key.pem")


def make_cert():
    r = harness.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-subj", "/CN=localhost", "-days", "1", "-keyout", KEY, "-out", CERT])
    if r.returncode != 0:
        raise harness.TestFailure(f"openssl req failed: {r.stderr!r}")


def tls_client(port: int) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=CERT)
    ctx.check_hostname = True
    raw = socket.create_connection(("127.0.0.1", port), timeout=harness.IO_TIMEOUT)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def read_line(s) -> bytes:
    """Reads up to and including a newline (or to the end of the stream)."""
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


@t.test
def openssl_s_client_is_greeted(k):
    with Daemon(k, "greeter", "--tls-cert", CERT, "--tls-key", KEY) as d:
        # -quiet keeps s_client open after its input ends: read the replies, then stop it.
        p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{d.port}", "-quiet", "-CAfile", CERT,
                              "-verify_return_error", "-servername", "localhost"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            p.stdin.write(b"bob\r\nalice\r\n")
            p.stdin.flush()
            out = b""
            deadline = time.monotonic() + harness.IO_TIMEOUT
            os.set_blocking(p.stdout.fileno(), False)
            while out.count(b"\n") < 2 and time.monotonic() < deadline and p.poll() is None:
                chunk = p.stdout.read()
                if chunk:
                    out += chunk
                else:
                    time.sleep(0.05)
        finally:
            p.kill()
            _, err = p.communicate()
        t.eq(out, b"hello bob\r\nhello alice\r\n", f"s_client got the replies (stderr {err[-300:]!r})")


@t.test
def python_ssl_round_trips_and_verifies(k):
    with Daemon(k, "greeter", "--tls-cert", CERT, "--tls-key", KEY) as d:
        with tls_client(d.port) as s:
            t.eq(s.version() in ("TLSv1.2", "TLSv1.3"), True, f"a modern TLS version ({s.version()})")
            s.sendall(b"over tls\n")
            t.eq(read_line(s), b"hello over tls\n", "the reply, with the client's LF ending")
            big = b"x" * 6000
            s.sendall(big + b"\n")
            t.eq(read_line(s), b"hello " + big + b"\n", "a 6 KB line comes back whole")


@t.test
def clear_text_on_the_tls_port_is_closed_and_others_carry_on(k):
    with Daemon(k, "greeter", "--tls-cert", CERT, "--tls-key", KEY) as d:
        with tls_client(d.port) as good:
            with socket.create_connection(("127.0.0.1", d.port), timeout=harness.IO_TIMEOUT) as bad:
                bad.sendall(b"hello in clear\r\n")
                got = b""
                try:
                    while True:
                        chunk = bad.recv(4096)
                        if not chunk:
                            break
                        got += chunk
                except ConnectionResetError:
                    pass
                t.check(b"hello" not in got, f"no greeting in clear ({got[:60]!r})")
            t.check(d.wait_log(r"TLS handshake failed", timeout=30), "the log says why it closed")
            good.sendall(b"still here\r\n")
            t.eq(read_line(good), b"hello still here\r\n", "the TLS client is unaffected")


@t.test
def a_bad_key_stops_the_start_naming_the_file(k):
    r = harness.run([k, "greeter", "--bind", "127.0.0.1", "--port", "0", "--tls-cert", CERT, "--tls-key",
                     os.path.join(_tmp.name, "missing.pem")])
    t.check(r.returncode != 0, f"exit non-zero ({r.returncode})")
    t.check(b"missing.pem" in r.stderr, f"the message names the file ({r.stderr[-200:]!r})")
    r = harness.run([k, "greeter", "--bind", "127.0.0.1", "--port", "0", "--tls-cert", CERT])
    t.check(r.returncode != 0 and b"tls-key" in r.stderr, f"--tls-cert alone is refused ({r.stderr[-200:]!r})")


make_cert()
t.main()
