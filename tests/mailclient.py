#!/usr/bin/env python3
"""Mail client for the install test (tests/install.rs): sends over SMTP and
reads over IMAP and POP3 with Python's standard library, printing what it
read as JSON. Must not change a mailbox (IMAP uses EXAMINE, POP3 never
deletes) or retry anything: a failure is an exception and a non-zero exit.

  mailclient.py smtp HOST PORT FROM TO SUBJECT
  mailclient.py imap HOST PORT USER PASSWORD   -> {"Folder": ["Subject", ...]}
  mailclient.py pop3 HOST PORT USER PASSWORD   -> ["Subject", ...]
"""

import email
import email.policy
import imaplib
import json
import poplib
import smtplib
import sys


def subject(raw):
    return str(email.message_from_bytes(raw, policy=email.policy.default)["Subject"])


def smtp(host, port, sender, to, subj):
    msg = f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subj}\r\n\r\nsent over SMTP\r\n"
    with smtplib.SMTP(host, int(port), timeout=60) as s:
        refused = s.sendmail(sender, [to], msg.encode())
        if refused:
            raise SystemExit(f"refused: {refused}")


def imap(host, port, user, password):
    out = {}
    with imaplib.IMAP4(host, int(port), timeout=60) as c:
        c.login(user, password)
        typ, lines = c.list()
        assert typ == "OK", lines
        for line in lines:
            # (\HasNoChildren) "." Folder   or   ... "." "Quoted name"
            name = line.decode().rsplit(' "." ', 1)[1].strip('"')
            typ, data = c.select(f'"{name}"', readonly=True)
            assert typ == "OK", data
            subjects = []
            if int(data[0]) > 0:
                typ, data = c.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                assert typ == "OK", data
                subjects = [subject(part[1]) for part in data if isinstance(part, tuple)]
            out[name] = sorted(subjects)
        c.logout()
    print(json.dumps(out))


def pop3(host, port, user, password):
    c = poplib.POP3(host, int(port), timeout=60)
    c.user(user)
    c.pass_(password)
    count, _ = c.stat()
    subjects = []
    for n in range(1, count + 1):
        _, lines, _ = c.top(n, 0)
        subjects.append(subject(b"\r\n".join(lines)))
    c.quit()
    print(json.dumps(sorted(subjects)))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"smtp": smtp, "imap": imap, "pop3": pop3}[cmd](*args)
