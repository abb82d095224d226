"""A scripted bulletin-board client for the integration tests and the
benchmark helpers: telnet negotiation stripped, prompts awaited."""

from __future__ import annotations

import harness

IAC, SB, SE = 255, 250, 240
WILL, WONT, DO, DONT = 251, 252, 253, 254


def strip_telnet(data: bytes) -> bytes:
    """What a terminal would show: IAC commands removed, IAC IAC kept as one 0xFF."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        b = data[i]
        if b != IAC:
            out.append(b)
            i += 1
            continue
        if i + 1 >= n:
            break
        c = data[i + 1]
        if c == IAC:
            out.append(IAC)
            i += 2
        elif c in (WILL, WONT, DO, DONT):
            i += 3
        elif c == SB:
            j = data.find(bytes([IAC, SE]), i + 2)
            i = n if j < 0 else j + 2
        else:
            i += 2
    return bytes(out)


class Session:
    """One connection to `kamaelia bbs`."""

    def __init__(self, host: str, port: int, timeout: float = harness.IO_TIMEOUT):
        self.c = harness.Client(host, port, timeout=timeout)
        self.raw = b""  # everything received, telnet commands included

    def until(self, token: str | bytes, timeout: float | None = None) -> str:
        """Text up to and including `token` (telnet commands removed)."""
        if isinstance(token, str):
            token = token.encode()
        got = self.c.read_until(token, timeout)
        self.raw += got
        return strip_telnet(got).decode("utf-8", "replace")

    def send(self, line: str | bytes) -> None:
        self.c.send_line(line)

    def ask(self, line: str | bytes, prompt: str) -> str:
        self.send(line)
        return self.until(prompt)

    def login(self, name: str, password: str) -> str:
        self.until("login: ")
        self.send(name)
        self.until("password: ")
        self.send(password)
        return self.until("main> ")

    def post(self, subject: str, body: list[str]) -> str:
        """Posts; returns the reply line ("Message N posted") text up to the next prompt."""
        self.send("p")
        self.until("subject: ")
        self.send(subject)
        self.until("ends it")
        for line in body:
            self.send(line)
        self.send(".")
        return self.until("main> ")

    def quit(self) -> str:
        self.send("q")
        out = strip_telnet(self.c.read_to_close()).decode("utf-8", "replace")
        return out

    def close(self) -> None:
        self.c.close()
