#!/usr/bin/env python3
"""Seeds for tests/fuzz/fuzz_mcast_packet.cpp: valid datagram sequences, each
datagram after a 2-byte length. The CRC-32C and the packet layout are written
again here, independently, so the seeds also cross-check the C++ encoder.

    python3 tests/fuzz/mcast_seeds.py CORPUS_DIR
"""
import hashlib
import os
import struct
import sys

TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    TABLE.append(c)


def crc32c(b: bytes, crc: int = 0) -> int:
    c = crc ^ 0xFFFFFFFF
    for x in b:
        c = TABLE[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def packet(file_id, seq, total, chunk, payload, sha):
    h = b"KM" + bytes([1, 0]) + struct.pack(">IIQHH", file_id, seq, total, chunk, len(payload)) + sha
    return h + struct.pack(">I", crc32c(payload, crc32c(h))) + payload


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(outdir, exist_ok=True)
    for n, (size, chunk) in enumerate([(0, 10), (25, 10), (100, 7), (300, 64)]):
        data = os.urandom(size)
        sha = hashlib.sha256(data).digest()
        count = max(1, (size + chunk - 1) // chunk)
        blob = b""
        for seq in list(range(count))[::-1] + [0]:  # backwards, then a duplicate
            p = packet(7, seq, size, chunk, data[seq * chunk:seq * chunk + chunk], sha)
            blob += struct.pack(">H", len(p)) + p
        with open(os.path.join(outdir, f"seed{n}"), "wb") as f:
            f.write(blob)


if __name__ == "__main__":
    main()
