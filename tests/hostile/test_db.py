#!/usr/bin/env python3
"""A database the daemon cannot use (issue 14, defect 1): read-only, damaged,
full. The ruled behaviour: at start-up an unwritable or damaged database is
refused with a clear message (exit 1); while running, a store error is a
temporary failure for that request only (policy: no reply and the
connection closed, so Postfix answers 451 4.3.5 — docs/POLICY.md), the
process never dies of it, and it works again when the cause goes away.

- read-only: the daemon runs as `nobody` (setpriv) on a database owned by
  root (a mode of 444 means nothing to root);
- damaged: a sound database whose table pages are overwritten (the header
  still says SQLite, so only an integrity check finds it);
- full: RLIMIT_FSIZE lowered on the running daemon (prlimit) to the size its
  files have, with SIGXFSZ ignored (a shell wrapper), so every
  write that grows a file fails with EFBIG, as on a full disk.
"""

import os
import shutil
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile_common import harness  # noqa: E402

t = harness.Tests("hostile_db")


def request(sender, rcpt="u@example.net", client="203.0.114.7"):
    return ("request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
            f"client_address={client}\nclient_name=unknown\nhelo_name=mx.example.org\n"
            f"sender={sender}\nrecipient={rcpt}\ninstance=i-{sender}\n\n").encode()


def ask(c, sender):
    c.send(request(sender))
    try:
        return c.read_until(b"\n\n").decode()
    except (harness.Closed, ConnectionResetError):
        return None


def policy(k, data_dir, *args, **kw):
    return harness.Daemon(k, "policy", "--bind", "127.0.0.1", "--port", "0", "--data-dir", data_dir, *args,
                          raw=True, **kw)


def make_db(k, data_dir):
    """A real greylist database with some rows, made by the daemon itself."""
    with policy(k, data_dir) as d:
        c = d.client()
        for i in range(300):
            t.require(ask(c, f"s{i}@example.org") is not None, "seeding answers")
        c.close()
    return os.path.join(data_dir, "greylist.sqlite")


def damage(path):
    """Overwrites the pages after the first few with garbage: the header still says SQLite."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    size = os.path.getsize(path)
    t.require(size > 8 * 4096, f"the database has pages to damage ({size} bytes)")
    with open(path, "r+b") as f:
        f.seek(2 * 4096)
        f.write(os.urandom(size - 2 * 4096))


def as_nobody(argv):
    return ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", "--"] + argv


@t.test
def policy_refuses_a_damaged_database_at_start(k):
    d0 = harness.Daemon(k, "policy", start=False, expect_servers=0)
    try:
        data = os.path.join(d0.tmp, "var")
        path = make_db(k, data)
        damage(path)
        with policy(k, data, start=False, expect_servers=0) as d:
            d.start()
            code = d.wait(60)
            t.eq(code, 1, f"exits 1: {d.stderr_text()[-1000:]}")
            t.check("greylist.sqlite" in d.stderr_text(), "names the file")
    finally:
        d0.cleanup()


@t.test
def bbs_refuses_a_damaged_database_at_start(k):
    d = harness.Daemon(k, "bbs", "--bind", "127.0.0.1", "--port", "0", start=False, expect_servers=0)
    try:
        data = os.path.join(d.tmp, "var")
        os.makedirs(data, exist_ok=True)
        path = os.path.join(data, "bbs.sqlite")
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE filler(x BLOB)")
        for _ in range(100):
            db.execute("INSERT INTO filler VALUES (randomblob(1000))")
        db.commit()
        db.close()
        damage(path)
        d.start()
        code = d.wait(60)
        t.eq(code, 1, f"exits 1: {d.stderr_text()[-1000:]}")
        t.check("bbs.sqlite" in d.stderr_text(), "names the file")
    finally:
        d.cleanup()


@t.test
def policy_refuses_a_read_only_database_at_start(k):
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        t.note("needs root and setpriv: skipped")
        return
    d0 = harness.Daemon(k, "policy", start=False, expect_servers=0)
    data = os.path.join(d0.tmp, "var")
    make_db(k, data)
    os.chmod(d0.tmp, 0o755)
    os.chmod(data, 0o755)  # root's: nobody can read, not write
    for f in os.listdir(data):
        os.chmod(os.path.join(data, f), 0o644)
    r = harness.run(as_nobody([k, "policy", "--bind", "127.0.0.1", "--port", "0", "--data-dir", data]), timeout=60)
    text = r.stderr.decode(errors="replace") + r.stdout.decode(errors="replace")
    t.eq(r.returncode, 1, f"exits 1: {text[-1000:]}")
    t.check("greylist.sqlite" in text, f"names the file: {text[-500:]}")
    t.check(not harness.SANITIZER_RE.search(text), "no sanitizer report")
    os.chmod(d0.tmp, 0o700)
    d0.cleanup()


@t.test
def policy_tempfails_while_the_disk_is_full_and_recovers(k):
    if not shutil.which("prlimit"):
        t.note("needs prlimit: skipped")
        return
    # SIGXFSZ ignored in the daemon (Python's subprocess would restore it to
    # the default, so a shell does it before exec): EFBIG, not death.
    tmp = tempfile.mkdtemp(prefix="kamaelia-hostile-xfsz-")
    wrapper = os.path.join(tmp, "kamaelia")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\ntrap '' XFSZ\nexec {shlex.quote(k)} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    try:
        with harness.Daemon(wrapper, "policy", "--bind", "127.0.0.1", "--port", "0") as d:
            c = d.client()
            t.require(ask(c, "before@example.org") is not None, "answers before")
            data = os.path.join(d.tmp, "var")
            biggest = max(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data))
            subprocess.run(["prlimit", "--pid", str(d.pid), f"--fsize={biggest}:unlimited"], check=True)
            answers = []
            for i in range(200):
                c = c if c else d.client()
                a = ask(c, f"full{i}@example.org")
                answers.append(a)
                if a is None:
                    c.close()
                    c = None
                t.require(d.alive(), f"the daemon is alive after request {i} of the outage")
            t.check(all(a is None or not a.startswith("action=DUNNO") for a in answers),
                    "no request is accepted while the store fails")
            t.check(any(a is None or "DEFER" in a or "451" in a for a in answers),
                    "the outage is a temporary failure")
            errors = [ln for ln in d.log_text().splitlines() if "error" in ln.lower()]
            t.check(len(errors) <= 10, f"logged once per outage, not per request ({len(errors)} lines)")
            subprocess.run(["prlimit", "--pid", str(d.pid), "--fsize=unlimited:unlimited"], check=True)
            deadline = time.monotonic() + 60
            ok = False
            while time.monotonic() < deadline and not ok:
                c = d.client()
                a = ask(c, f"after{time.monotonic()}@example.org")
                c.close()
                ok = a is not None
            t.check(ok, "it answers again once the disk has room")
            t.check(not harness.SANITIZER_RE.search(d.stderr_text()), "no sanitizer report")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    t.main()
