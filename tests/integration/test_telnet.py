#!/usr/bin/env python3
"""Real telnet clients, driven by expect: three of them chat through
`kamaelia chat` (tests/integration/telnet_chat.exp), and one talks to the
greeter. telnet and expect come from scripts/install-deps."""

import os
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon  # noqa: E402

t = harness.Tests("telnet")
HERE = os.path.dirname(os.path.abspath(__file__))

GREETER_EXP = r'''
lassign $argv host port
set timeout 30
log_user 0
set stty_init "-echo"
spawn -noecho telnet $host $port
expect {
    "Escape character is" {}
    eof { puts "FAIL: telnet could not connect"; exit 1 }
    timeout { puts "FAIL: telnet did not connect"; exit 1 }
}
foreach name {bob {two words} {}} {
    send "$name\r"
    expect {
        -ex "hello $name\r\n" { puts "ok: hello $name" }
        eof { puts "FAIL: closed after '$name'"; exit 1 }
        timeout { puts "FAIL: no 'hello $name'"; exit 1 }
    }
}
close
wait
exit 0
'''


def tools():
    missing = [p for p in ("expect", "telnet") if shutil.which(p) is None]
    t.require(not missing, f"{missing} installed (run scripts/install-deps)")
    return shutil.which("expect")


@t.test
def three_telnet_clients_chat(k):
    expect = tools()
    with Daemon(k, "chat") as d:
        r = harness.run([expect, "-f", os.path.join(HERE, "telnet_chat.exp"), "127.0.0.1", str(d.port)],
                        timeout=300)
        out = r.stdout.decode(errors="replace")
        print("\n".join("  | " + ln for ln in out.splitlines()), flush=True)
        t.eq(r.returncode, 0, f"telnet_chat.exp (stderr {r.stderr.decode(errors='replace')[-500:]!r})")
        t.check("all checks passed" in out, "telnet_chat.exp finished")
        t.require(d.alive(), "daemon alive after the telnet session")


@t.test
def telnet_greeter(k):
    expect = tools()
    with Daemon(k, "greeter") as d:
        with tempfile.NamedTemporaryFile("w", suffix=".exp", delete=False) as f:
            f.write(GREETER_EXP)
        try:
            r = harness.run([expect, "-f", f.name, "127.0.0.1", str(d.port)], timeout=120)
        finally:
            os.unlink(f.name)
        out = r.stdout.decode(errors="replace")
        print("\n".join("  | " + ln for ln in out.splitlines()), flush=True)
        t.eq(r.returncode, 0, "telnet greeter session")


if __name__ == "__main__":
    t.main()
