"""The mail checks of scripts/container-test, from outside the container.

mail.py smtp HOST PORT DELAY          a first try is greylisted (451), a retry
                                      after DELAY seconds is relayed (250)
mail.py smtp-refused HOST PORT 0      a recipient outside the allowed domains: 550
mail.py policy HOST PORT DELAY        a Postfix policy request: defer first,
                                      pass after DELAY seconds
"""
import smtplib
import socket
import sys
import time

mode, host, port, delay = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
SENDER = "alice@sender.example"
RCPT = "bob@example.org"
MSG = f"From: {SENDER}\r\nTo: {RCPT}\r\nSubject: container-test\r\n\r\nhello through grey\r\n"


def rcpt_code(rcpt):
    with smtplib.SMTP(host, port, timeout=30) as s:
        s.ehlo("client.example")
        s.mail(SENDER)
        code, text = s.rcpt(rcpt)
        print(f"RCPT {rcpt}: {code} {text.decode(errors='replace')}")
        if code == 250:
            code2, text2 = s.data(MSG)
            print(f"DATA: {code2} {text2.decode(errors='replace')}")
            return code, code2
        return code, None


def policy_action():
    req = ("request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
           "client_address=192.0.2.7\nclient_name=mx.sender.example\nhelo_name=mx.sender.example\n"
           f"sender={SENDER}\nrecipient=carol@example.net\ninstance=ct.{time.time()}\n\n")
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(req.encode())
        got = b""
        while not got.endswith(b"\n\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    text = got.decode(errors="replace").strip()
    print(f"policy: {text}")
    return text


if mode == "smtp":
    code, _ = rcpt_code(RCPT)
    if code not in (450, 451):
        sys.exit(f"first try not greylisted: {code}")
    # The retry: generous, the delay is only the least wait.
    deadline = time.time() + delay + 60
    time.sleep(delay + 1)
    while True:
        code, data_code = rcpt_code(RCPT)
        if code == 250:
            sys.exit(0 if data_code == 250 else f"DATA ended {data_code}")
        if time.time() > deadline:
            sys.exit(f"retry still refused: {code}")
        time.sleep(2)
elif mode == "smtp-refused":
    code, _ = rcpt_code("someone@not-ours.example")
    sys.exit(0 if 500 <= code < 600 else 1)
elif mode == "policy":
    first = policy_action()
    if not first.lower().startswith("action=defer"):
        sys.exit("first policy answer is not a defer")
    deadline = time.time() + delay + 60
    time.sleep(delay + 1)
    while True:
        again = policy_action()
        if again.lower().startswith(("action=dunno", "action=prepend")):
            sys.exit(0)
        if time.time() > deadline:
            sys.exit("still deferred after the delay")
        time.sleep(2)
else:
    sys.exit(f"unknown mode {mode}")
