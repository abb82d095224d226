#!/usr/bin/env python3
"""SMTP smuggling through `kamaelia grey` to Postfix's smtp-sink (issue 14:
an attack that held, kept). For each way of hiding an end of data inside a
message (bare LF or CR around the dot, NUL, a dot-stuffing trick), followed
by a whole second transaction, the upstream sees at most one message per
DATA the client sent, and never the smuggled envelope. Also: pipelined
commands after a refused DATA are answered one by one, and the daemon lives.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile_common import harness  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import test_grey as base  # noqa: E402  (SmtpSink and grey(); its own tests do not run on import)

t = harness.Tests("hostile_smtp")
base.t = t

SMUGGLED = b"MAIL FROM:<evil@smuggler.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n"
HIDDEN_ENDS = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r\n.\r", b"\r.\n", b"\n.\r", b"\r.\r\n",
               b"\r\n\x00.\r\n", b"\r\n.\x00\r\n", b"\r\n..\r\n.\n"]


@t.test
def smuggling_variants_never_make_a_second_message_upstream(k):
    if not harness.shutil.which("smtp-sink"):
        t.note("smtp-sink (Postfix) is not installed: skipped")
        return
    port = harness.free_port()
    sink = base.SmtpSink(port)
    try:
        with base.grey(k, port, "--allowed-sender-net", "127.0.0.1") as d:
            datas = 0
            replies = []
            for hidden in HIDDEN_ENDS:
                with d.client() as c:
                    t.check(c.read_line().startswith(b"220 "), "banner")
                    c.send(b"EHLO client.test\r\n")
                    c.read_until(b"250 ENHANCEDSTATUSCODES\r\n")
                    c.send(b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n")
                    t.check(c.read_line().startswith(b"250"), "MAIL")
                    t.check(c.read_line().startswith(b"250"), "RCPT")
                    t.check(c.read_line().startswith(b"354"), "354")
                    datas += 1
                    c.send(b"Subject: carrier\r\n\r\ncarrier" + hidden + SMUGGLED + b"\r\n.\r\n")
                    reply = c.read_line()
                    replies.append(reply[:3].decode(errors="replace"))
                    t.check(reply[:1] in (b"2", b"5"), f"{hidden!r}: one reply to the DATA: {reply!r}")
                    c.send(b"QUIT\r\n")
                    rest = c.read_to_close(timeout=harness.IO_TIMEOUT)
                    t.check(b"354" not in rest, f"{hidden!r}: no second DATA was opened: {rest!r}")
            t.require(d.alive(), "daemon alive")
        time.sleep(1)
        dumps = sink.dumps()
        t.note(f"replies to the {datas} DATAs: {' '.join(replies)}; {len(dumps)} messages upstream")
        t.check(len(dumps) <= datas, f"at most one message upstream per DATA ({len(dumps)} for {datas})")
        for m in dumps:
            # Every message upstream is a carrier the client sent; a smuggled one would not be.
            t.check(b"carrier" in m, f"no smuggled message reached the upstream: {m[:300]!r}")
    finally:
        sink.close()


if __name__ == "__main__":
    t.main()
