"""`kamaelia bbs`: the Seq-staged bulletin board against real clients.

Python sockets play the users (telnet negotiation stripped by bbs_client);
bbs_telnet.exp drives a real `telnet` under expect. Users come in through
`kamaelia bbs-user add` and `kamaelia bbs-import`, as an operator would add
them. The KDF cost is lowered with --kdf-iterations to keep ASan runs fast."""

import json
import os
import re
import select
import shutil
import signal
import socket
import sqlite3
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from bbs_client import Session, strip_telnet  # noqa: E402

t = harness.Tests("bbs")
KDF = "1000"


def add_user(k, data_dir, name, password):
    r = harness.run([k, "bbs-user", "add", name, "--data-dir", data_dir, "--kdf-iterations", KDF],
                    input=(password + "\n").encode())
    t.require(r.returncode == 0, f"bbs-user add {name}: {r.stderr.decode(errors='replace')}")


def board(k, *extra, users=(("harry", "password"), ("dick", "secret")), kdf=KDF):
    d = harness.Daemon(k, "bbs", "--bind", "127.0.0.1", "--port", "0", "--kdf-iterations", kdf, *extra, start=False)
    data = os.path.join(d.tmp, "var")
    for name, pw in users:
        add_user(k, data, name, pw)
    d.start()
    return d


def data_dir(d):
    return os.path.join(d.tmp, "var")


def session(d):
    return Session(*d.address())


def stats(d, timeout=60.0):
    """(sessions open, components live) from the SIGHUP stats line, once it is fresh."""
    rx = re.compile(r"bbs: (\d+) sessions open, (\d+) sessions in all, (\d+) components live")
    before = len(rx.findall(d.log_text()))
    d.signal(signal.SIGHUP)
    t.require(d.wait_log(rx.pattern, timeout=timeout, count=before + 1), "no stats line after SIGHUP")
    m = rx.findall(d.log_text())[-1]
    return int(m[0]), int(m[2])


def settle_to(d, live, timeout=60.0):
    """Polls the stats until no session is open and `live` components remain."""
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = stats(d)
        if got == (0, live):
            return got
        time.sleep(0.2)
    return got


@t.test
def dialogue_two_users(k):
    with board(k) as d:
        h = session(d)
        first = h.until("login: ")
        t.eq(first, "\r\nlogin: ", "greeting")
        h.send("harry")
        h.until("password: ")
        t.check(b"\xff\xfb\x01password: " in h.raw, "IAC WILL ECHO before the password prompt")
        h.send("password")
        out = h.until("main> ")
        t.check(h.raw.count(b"\xff\xfc\x01") == 1, "IAC WONT ECHO after the password")
        t.check("Login Successful" in out and "Hello, harry" in out, f"logged in: {out!r}")
        t.check("No messages." in h.ask("", "main> "), "empty board")
        out = h.post("Hello from harry", ["line one", "line two"])
        m = re.search(r"Message (\d+) posted", out)
        t.require(m is not None, f"posted: {out!r}")
        first_id = m.group(1)

        dk = session(d)
        out = dk.login("dick", "secret")
        t.check("You have 1 message(s) waiting" in out, f"dick told of the new message: {out!r}")
        out = dk.ask("", "messages> ")
        out = dk.ask("", "messages> ")
        t.check(f"message: {first_id}\r\n" in out and "from: harry\r\n" in out and "line one\r\nline two\r\n" in out,
                f"dick reads harry's message: {out!r}")
        out = dk.ask("d", "messages> ")
        t.check("You can only delete your own messages" in out, "no deleting others' messages")
        dk.send("r")
        dk.until("subject [Re: Hello from harry]: ")
        dk.send("")
        dk.until("ends it")
        dk.send("thanks")
        dk.send(".")
        out = dk.until("messages> ")
        t.check(re.search(r"Message \d+ posted", out) is not None, f"reply posted: {out!r}")
        dk.ask("x", "main> ")
        t.check("Goodbye!" in dk.quit(), "dick says goodbye")

        out = h.ask("", "messages> ")
        t.check("You have 1 message(s) waiting" in out, f"harry: one unread reply: {out!r}")
        out = h.ask("", "messages> ")
        t.check("from: dick\r\n" in out and f"In-Reply-To: {first_id}\r\n" in out and "to: harry\r\n" in out,
                f"harry reads the reply: {out!r}")
        out = h.ask("", "messages> ")
        t.check(f"message: {first_id}\r\n" in out, "then his own, already read")
        out = h.ask("d", "messages> ")
        t.check(f"Message {first_id} deleted" in out, f"harry deletes his own: {out!r}")
        h.ask("x", "main> ")
        t.check("Saving user data..." in (bye := h.quit()) and "Goodbye!" in bye, f"goodbye: {bye!r}")
    db = None


@t.test
def wrong_password(k):
    with board(k) as d:
        s = session(d)
        s.until("login: ")
        s.send("harry")
        s.until("password: ")
        s.send("wrong")
        out = s.until("login: ")
        t.check("Login Failed!" in out, f"failed: {out!r}")
        s.send("harry")
        s.until("password: ")
        s.send("password")
        t.check("Login Successful" in s.until("main> "), "the right password then works")
        s.close()


@t.test
def import_original(k):
    d = harness.Daemon(k, "bbs", "--bind", "127.0.0.1", "--port", "0", "--kdf-iterations", KDF, start=False)
    old = os.path.join(d.tmp, "old")
    os.makedirs(os.path.join(old, "messages"))
    with open(os.path.join(old, "users.passwd"), "w") as f:
        json.dump({n: "password" for n in ("harry", "dick", "michael", "tom")}, f)
    with open(os.path.join(old, "messages", ".meta"), "w") as f:
        json.dump({"maxid": 2}, f)
    for i, subj in ((1, "first"), (2, "second")):
        with open(os.path.join(old, "messages", str(i)), "w") as f:
            json.dump({"message": i, "date": "Sat Jun 27 10:00:00 2009", "from": "tom", "to": "all", "subject": subj,
                       "reply-to": [1] if i == 2 else [], "__body__": f"body {i}"}, f)
    r = harness.run([k, "bbs-import", old, "--data-dir", data_dir(d), "--kdf-iterations", KDF])
    t.eq(r.returncode, 0, f"bbs-import ({r.stderr.decode(errors='replace')})")
    t.check(b"imported 4 user(s) (0 skipped), 2 message(s)" in r.stdout, f"report: {r.stdout!r}")
    with d.start():
        s = session(d)
        out = s.login("Michael", "password")
        t.check("You have 2 message(s) waiting" in out, f"imported messages waiting: {out!r}")
        s.ask("", "messages> ")
        out = s.ask("", "messages> ")
        t.check("subject: first" in out and "date: Sat Jun 27 10:00:00 2009" in out, f"first: {out!r}")
        out = s.ask("", "messages> ")
        t.check("subject: second" in out and "In-Reply-To: 1" in out, f"second: {out!r}")
        s.close()


@t.test
def bbs_user_cli(k):
    d = harness.Daemon(k, "bbs", start=False)
    data = data_dir(d)
    add_user(k, data, "tom", "pw")
    r = harness.run([k, "bbs-user", "add", "Tom", "--data-dir", data, "--kdf-iterations", KDF], input=b"x\n")
    t.check(r.returncode != 0 and b"exists" in r.stderr, "a taken name is refused")
    r = harness.run([k, "bbs-user", "add", "bad name", "--data-dir", data], input=b"x\n")
    t.check(r.returncode != 0, "a name with a space is refused")
    r = harness.run([k, "bbs-user", "add", "empty", "--data-dir", data], input=b"")
    t.check(r.returncode != 0, "no password, no user")
    con = sqlite3.connect(os.path.join(data, "bbs.sqlite"))
    rows = con.execute("SELECT name, length(salt), length(hash), iterations FROM users").fetchall()
    con.close()
    t.eq(rows, [("tom", 16, 32, int(KDF))], "stored salted and hashed, never in clear")
    d.cleanup()


def run_script(d, script, how):
    """Plays `script` (lines, each answered by a prompt) and leaves as `how` says."""
    s = session(d)
    s.until("login: ")
    for line, prompt in script:
        s.send(line)
        if prompt:
            s.until(prompt)
    if how == "reset":  # RST: SO_LINGER 0
        s.c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    elif how == "half":
        s.c.shutdown_write()
        s.c.read_to_close()
        s.close()
    else:
        s.close()


@t.test
def disconnect_at_every_prompt(k):
    with board(k) as d:
        sessions0, live0 = stats(d)
        t.eq(sessions0, 0, "no session before")
        login = [("harry", "password: "), ("password", "main> ")]
        scripts = [
            [],
            [("harry", "password: ")],
            login,
            login + [("p", "subject: ")],
            login + [("p", "subject: "), ("subj", "ends it")],
            login + [("p", "subject: "), ("subj", "ends it"), ("body", None)],
            login + [("h", "main> ")],
            [("harry", "password: "), ("wrong", "login: ")],
        ]
        # Messages exist, so browsing reaches the messages> prompt.
        s = session(d)
        s.login("dick", "secret")
        s.post("for browsing", ["x"])
        # The measure sees a session: it is not vacuous.
        open_sessions, live_open = stats(d)
        t.check(open_sessions == 1 and live_open > live0, f"a live session shows: {(open_sessions, live_open)} vs {live0}")
        s.quit()
        t.note(f"baseline {live0} components, {live_open} with one session open")
        scripts.append(login + [("", "messages> ")])
        scripts.append(login + [("", "messages> "), ("", "messages> "), ("r", "]: ")])
        for how in ("close", "reset", "half"):
            for sc in scripts:
                run_script(d, sc, how)
        got = settle_to(d, live0)
        t.eq(got, (0, live0), "every session and component gone: (sessions open, components live)")
        # and the board still serves
        s = session(d)
        t.check("Login Successful" in s.login("harry", "password"), "still serving")
        s.close()


@t.test
def hostile_input(k):
    with board(k, "--max-line", "200") as d:
        s = session(d)
        s.login("harry", "password")
        out = s.ask("x" * 300, "main> ")
        t.check("error: line too long (the limit is 200 bytes)" in out, f"long line answered: {out!r}")
        out = s.ask(b"h\x1b[2J\x07", "main> ")
        t.check("error: control characters are not allowed" in out, f"control bytes answered: {out!r}")
        out = s.ask(b"\xff\xfd\x18\xff\xfa\x18\x00xterm\xff\xf0h", "main> ")
        t.check("<return> - browse messages" in out, f"telnet negotiation stripped: {out!r}")
        out = s.post("'; DROP TABLE messages; --", ["Robert'); DELETE FROM users;--", "\" OR 1=1"])
        t.check(re.search(r"Message \d+ posted", out) is not None, f"SQL metacharacters are text: {out!r}")
        s.ask("", "messages> ")
        out = s.ask("", "messages> ")
        t.check("subject: '; DROP TABLE messages; --" in out and "Robert'); DELETE FROM users;--" in out,
                f"stored as typed: {out!r}")
        s.ask("x", "main> ")
        s.send("y" * 100000)  # past the framer's hard limit: told, then cut off
        rest = strip_telnet(s.c.read_to_close()).decode(errors="replace")
        t.check("line too long" in rest, f"told why before the close: {rest[-200:]!r}")
        s.close()
        # The login prompt gets the same treatment.
        s = session(d)
        s.until("login: ")
        s.send("\x00\x01\x02")
        t.check("control characters" in s.until("login: "), "control bytes at login")
        s.close()
        s = session(d)
        t.check("Login Successful" in s.login("dick", "secret"), "the board keeps serving")
        s.close()


@t.test
def session_cap_and_idle(k):
    with board(k, "--max-sessions", "2", "--idle-timeout", "2") as d:
        a, b = session(d), session(d)
        a.until("login: ")
        b.until("login: ")
        c = session(d)
        out = strip_telnet(c.c.read_to_close()).decode()
        t.check("the board is full" in out, f"third refused politely: {out!r}")
        out = strip_telnet(a.c.read_to_close(timeout=60)).decode()
        t.check("Idle for too long; goodbye." in out, f"idle session timed out: {out!r}")
        b.close()


def client_worker(d, idx, name, pw, results, errors, barrier=None):
    try:
        s = session(d)
        s.login(name, pw)
        if barrier is not None:
            barrier.wait()  # every session logged in at once before any posts
        out = s.post(f"load {idx}", [f"body {idx}"])
        m = re.search(r"Message (\d+) posted", out)
        if not m:
            raise RuntimeError(f"no ack: {out!r}")
        s.ask("", "messages> ")
        out = s.ask("", "messages> ")
        if "message: " not in out:
            raise RuntimeError(f"no message read: {out!r}")
        s.ask("x", "main> ")
        if "Goodbye!" not in s.quit():
            raise RuntimeError("no goodbye")
        results[idx] = int(m.group(1))
    except Exception as e:  # noqa: BLE001
        errors.append(f"{idx}: {e!r}")


@t.test
def five_hundred_sessions(k):
    harness.raise_nofile()
    users = [(f"user{i}", f"pw{i}") for i in range(20)]
    with board(k, users=users) as d:
        n = 500
        results, errors = {}, []
        barrier = threading.Barrier(n, timeout=600)
        threads = [threading.Thread(target=client_worker,
                                    args=(d, i, *users[i % len(users)], results, errors, barrier))
                   for i in range(n)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(600)
        t.eq(errors[:5], [], "every session completes")
        t.eq(len(results), n, "every post acknowledged")
        con = sqlite3.connect(os.path.join(data_dir(d), "bbs.sqlite"))
        subjects = {r[0] for r in con.execute("SELECT subject FROM messages")}
        con.close()
        t.eq(len({f"load {i}" for i in range(n)} - subjects), 0, "no post lost")
        t.eq(len(set(results.values())), n, "distinct ids")


@t.test
def kill_9_keeps_acknowledged_posts(k):
    harness.raise_nofile()
    users = [(f"user{i}", f"pw{i}") for i in range(10)]
    d = board(k, users=users)
    data = data_dir(d)
    acked, lock, stop = [], threading.Lock(), threading.Event()

    def poster(i):
        try:
            s = session(d)
            s.login(*users[i % len(users)])
            j = 0
            while not stop.is_set():
                subj = f"k{i}-{j}"
                out = s.post(subj, ["x"])
                if re.search(r"Message \d+ posted", out):
                    with lock:
                        acked.append(subj)
                j += 1
        except Exception:  # noqa: BLE001 - the kill cuts every client off
            pass

    threads = [threading.Thread(target=poster, args=(i,)) for i in range(20)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 300
    while len(acked) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(d.pid, signal.SIGKILL)  # mid-load, no warning
    stop.set()
    for th in threads:
        th.join(120)
    d.proc.wait()
    t.require(len(acked) >= 200, f"only {len(acked)} posts acknowledged before the deadline")
    snapshot = list(acked)
    d2 = harness.Daemon(k, "bbs", "--bind", "127.0.0.1", "--port", "0", "--data-dir", data, raw=True)
    with d2:
        s = Session(*d2.address())
        t.check("Login Successful" in s.login("user0", "pw0"), "the board restarts and serves")
        s.close()
        con = sqlite3.connect(os.path.join(data, "bbs.sqlite"))
        subjects = {r[0] for r in con.execute("SELECT subject FROM messages")}
        con.close()
        lost = [x for x in snapshot if x not in subjects]
        t.eq(lost[:10], [], f"acknowledged posts present after kill -9 ({len(snapshot)} acknowledged)")
    d.cleanup()


@t.test
def real_telnet(k):
    missing = [p for p in ("expect", "telnet") if shutil.which(p) is None]
    t.require(not missing, f"missing {missing} (scripts/install-deps installs them)")
    with board(k) as d:
        r = harness.run([shutil.which("expect"), "-f", os.path.join(HERE, "bbs_telnet.exp"), "127.0.0.1",
                         str(d.port)], timeout=180)
        t.eq(r.returncode, 0, f"bbs_telnet.exp: {r.stdout.decode(errors='replace')[-800:]}")


@t.test
def sigterm_with_sessions_and_config(k):
    d = harness.Daemon(k, "bbs", start=False)
    cfg = os.path.join(d.tmp, "k.ini")
    with open(cfg, "w") as f:
        f.write("[bbs]\nbind = 127.0.0.1\nport = 0\nkdf-iterations = 2000\nmax-sessions = 50\n")
    d.argv += ["--config", cfg]
    add_user(k, data_dir(d), "harry", "password")
    with d.start():
        t.check(d.wait_log(r"kdf iterations 2000, at most 50 sessions"), "the [bbs] keys are read")
        idle = session(d)
        idle.login("harry", "password")  # rehashed at the configured cost
        busy = session(d)
        busy.login("harry", "password")
        busy.send("p")
        busy.until("subject: ")
        con = sqlite3.connect(os.path.join(data_dir(d), "bbs.sqlite"))
        t.eq(con.execute("SELECT iterations FROM users WHERE name = 'harry'").fetchall(), [(2000,)],
             "the login rehashed the password at the configured cost")
        con.close()
        d.signal(signal.SIGTERM)
        t.eq(d.wait(60), 0, "exits 0 on SIGTERM with sessions open")
        t.check(idle.c.closed_by_server(30), "idle session closed")
        t.check(busy.c.closed_by_server(30), "session mid-post closed")


@t.test
def login_hashing_does_not_stall_others(k):
    # A login's KDF runs for seconds (3M iterations for an unknown name:
    # the decoy costs the configured amount); meanwhile another client is
    # served. The margin is seconds against milliseconds.
    with board(k, kdf="3000000") as d:
        a = session(d)
        a.until("login: ")
        a.send("nobody")
        a.until("password: ")
        a.send("whatever")  # now hashing on the KDF worker
        time.sleep(0.2)
        b = session(d)
        t.eq(b.until("login: "), "\r\nlogin: ", "a newcomer is greeted while a login hashes")
        b.send("harry")
        b.until("password: ")
        readable, _, _ = select.select([a.c.sock], [], [], 0)
        t.check(a.c.buf == b"" and not readable, "the slow login is still hashing meanwhile")
        out = a.until("login: ", timeout=300)
        t.check("Login Failed!" in out, f"the slow login ends as it should: {out!r}")
        a.close()
        b.close()


t.main()
