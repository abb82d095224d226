"""Shared bits of the hostile suite: the integration harness, and whether the
daemon binary is sanitized (its RSS then measures ASan's quarantine, not us)."""

import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402,F401


def sanitized(binary: str) -> bool:
    """True if `binary` was built with ASan/TSan (its RSS is not the daemon's)."""
    try:
        with open(binary, "rb") as f:
            data = f.read()
    except OSError:
        return True
    return b"__asan_init" in data or b"__tsan_init" in data
