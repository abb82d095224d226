"""ask.py HOST PORT LINE EXPECTED: sends LINE, exits 0 if the first line back is EXPECTED."""
import socket
import sys

host, port, line, expected = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
try:
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(line.encode() + b"\r\n")
        got = b""
        while not got.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
except OSError as e:
    print(f"ask: {host}:{port}: {e}", file=sys.stderr)
    sys.exit(1)
text = got.decode(errors="replace").strip()
if text != expected:
    print(f"ask: {host}:{port}: got {text!r}, expected {expected!r}", file=sys.stderr)
    sys.exit(1)
