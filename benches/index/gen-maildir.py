#!/usr/bin/env python3
# gen-maildir.py - writes a synthetic Maildir++ for one user (default 100,000 messages of 2-8 KiB over INBOX, .Archive, .Lists.rust, .Sent; Dovecot-style names, mixed flags, some in new/) plus a manifest of expected search counts; must not write outside the given directory (which must be under /tmp and not exist yet), fsync, or use the network.
"""Usage: gen-maildir.py MAILDIR [--count 100000] [--seed 4] [--manifest FILE]

MAILDIR is the user's Maildir ({home}/Maildir); it must not exist yet.
Deterministic for a given --seed. File mtimes (INTERNALDATE) are spread over
2019-01-01 .. 2026-10-31 and match the <secs> of the name; the Date: header
is a few seconds to hours earlier. Lines end in LF, so W = S + number of
lines, as Dovecot writes it.

Search targets (counts go to the manifest, default MAILDIR/../gen-manifest.json):
  From word "zimmermann"          ~1% of messages (one sender of many)
  Subject phrase "quarterly report" ~0.5%
  Message-ID of message #54321 (or #count/2) exactly 1
  flags: cur/ 2,S 55%  2,RS 15%  2,FS 5%  2,FRS 2%  2, 13%  2,Sa 2% (keyword $Forwarded); ~8% in new/
"""
import argparse
import calendar
import json
import os
import random
import sys
import time

FOLDERS = [  # (storage dir relative to the Maildir, share of messages)
    ("", 0.40),
    (".Archive", 0.35),
    (".Lists.rust", 0.20),
    (".Sent", 0.05),
]
HOSTS = ["mx1.example.net", "mail.example.net", "imap.example.net"]
T0 = calendar.timegm((2019, 1, 1, 0, 0, 0))
T1 = calendar.timegm((2026, 10, 31, 0, 0, 0))

FIRST = ("Anna Ben Carla David Elena Felix Greta Hugo Ines Jonas Karin Lukas Maria Nils Olga Paul "
         "Quentin Rosa Stefan Tina Ulrich Vera Walter Xenia Yusuf Zoe Amir Bea Chen Dana Emil Fatima "
         "Goran Hana Igor Jana Kofi Lena Marek Nora Omar Petra Raj Sara Tomas Uma Viktor Wei").split()
LAST = ("Schmidt Mueller Garcia Rossi Dubois Novak Jensen Kowalski Silva Tanaka Nguyen Okafor Smith "
        "Brown Wilson Taylor Moreau Lindqvist Horvat Petrov Ivanova Costa Fischer Weber Wagner Becker "
        "Schulz Hoffmann Koch Richter Klein Wolf Neumann Schwarz Braun Hofmann Hartmann Lange Krause "
        "Lehmann Walter Kaiser Fuchs Peters Lang Jung Hahn Vogel Friedrich Keller").split()
DOMAINS = ["example.org", "example.com", "mail.example.net", "corp.example", "uni.example.edu",
           "lists.example.org", "shop.example", "bank.example", "travel.example", "news.example.com"]
WORDS = ("the of and to in is for on that with as it be by this from are at or an have not was but "
         "all your we can more will one about has which their if there new time up out so what "
         "server release build crate async tokio trait lifetime borrow compile error warning test "
         "patch review merge branch commit issue bug fix feature meeting invoice order shipping "
         "account password update newsletter offer discount ticket flight hotel booking agenda "
         "minutes budget forecast team project deadline draft proposal contract signature schedule "
         "weekend dinner photos family birthday holiday garden weather train station coffee").split()
SUBJ_A = ("Re:|Fwd:|Meeting notes:|Invoice for|Your order:|Update on|Question about|Reminder:|"
          "Weekly digest:|Draft:|Proposal for|Lunch and|Tickets for|Photos from|Agenda for").split("|")
SUBJ_B = ("the budget|next week|project Apollo|release 1.4|the contract|our trip|the migration|"
          "Friday|the garden party|shipping status|account security|the new office|team offsite|"
          "build failures|the Q3 numbers|async traits|borrow checker errors|the conference").split("|")
RUST_SUBJ = ["[rust] {} in {}", "[rust] RFC: {} for {}", "[rust] Re: {} with {}", "[rust] Pre-RFC: {} {}"]


def rfc2822(t):
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(t))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("maildir")
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--manifest")
    a = ap.parse_args()
    root = os.path.abspath(a.maildir)
    if not root.startswith("/tmp/"):
        sys.exit("gen-maildir: MAILDIR must be under /tmp")
    if os.path.exists(root):
        sys.exit(f"gen-maildir: {root} exists; remove it first")
    manifest_path = a.manifest or os.path.join(os.path.dirname(root), "gen-manifest.json")
    rnd = random.Random(a.seed)

    # A pool of filler text to slice bodies from (fast, still word-like).
    filler_words = [rnd.choice(WORDS) for _ in range(400_000)]
    filler = []
    line = []
    n = 0
    for w in filler_words:
        if n + len(w) + 1 > 72:
            filler.append(" ".join(line))
            line, n = [], 0
        line.append(w)
        n += len(w) + 1
    filler_lines = filler

    senders = []
    for i in range(1500):
        f, l, d = rnd.choice(FIRST), rnd.choice(LAST), rnd.choice(DOMAINS)
        senders.append(f"{f} {l} <{f.lower()}.{l.lower()}{i % 7 or ''}@{d}>")
    zimmer = "Greta Zimmermann <greta.zimmermann@corp.example>"
    me = "Pat User <user@example.test>"

    # Folder layout.
    for d, _ in FOLDERS:
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(root, d, sub))
        if d:
            open(os.path.join(root, d, "maildirfolder"), "w").close()
        with open(os.path.join(root, d, "dovecot-keywords"), "w") as f:
            f.write("0 $Forwarded\n1 $Junk\n")
    with open(os.path.join(root, "subscriptions"), "w") as f:
        f.write("Archive\nLists.rust\nSent\n")

    expected = {"total": a.count, "from_zimmermann": 0, "subject_quarterly_report": 0,
                "seen": 0, "new": 0, "flagged": 0, "answered": 0, "keyword_forwarded": 0,
                "per_folder": {}, "since_2024_03_01_before_2024_04_01": 0,
                "since_2025_01_01_before_2026_01_01": 0, "zimmermann_and_seen_2025": 0,
                "bytes": 0}
    d_2024_03 = calendar.timegm((2024, 3, 1, 0, 0, 0))
    d_2024_04 = calendar.timegm((2024, 4, 1, 0, 0, 0))
    d_2025 = calendar.timegm((2025, 1, 1, 0, 0, 0))
    d_2026 = calendar.timegm((2026, 1, 1, 0, 0, 0))
    probe = 54321 if a.count > 54321 else a.count // 2
    pid_q = {}
    cum = []
    acc = 0.0
    for d, share in FOLDERS:
        acc += share
        cum.append((acc, d))
    recent_ids = []
    t_start = time.time()
    for i in range(a.count):
        r = rnd.random()
        folder = next((d for c, d in cum if r < c), cum[-1][1])
        secs = rnd.randint(T0, T1)
        usec = rnd.randint(0, 999_999)
        pid = rnd.choice(range(1000, 60000, 7))
        q = pid_q.get(pid, 0) + 1
        pid_q[pid] = q
        host = rnd.choice(HOSTS)
        msgid = f"{secs:x}.{i:06d}.{rnd.getrandbits(40):010x}@{rnd.choice(DOMAINS)}"
        if i == probe:
            expected["message_id_probe"] = msgid

        if folder == ".Sent":
            frm, to = me, rnd.choice(senders)
        else:
            frm = zimmer if rnd.random() < 0.01 else rnd.choice(senders)
            to = me if folder != ".Lists.rust" else "rust-users <rust-users@lists.example.org>"
        if rnd.random() < 0.005:
            subject = rnd.choice(["The quarterly report", "Re: quarterly report draft", "Quarterly report Q%d" % rnd.randint(1, 4)])
        elif folder == ".Lists.rust":
            subject = rnd.choice(RUST_SUBJ).format(rnd.choice(SUBJ_B), rnd.choice(WORDS))
        else:
            subject = f"{rnd.choice(SUBJ_A)} {rnd.choice(SUBJ_B)}"
        reply = subject.startswith("Re:") and recent_ids
        date_hdr = secs - rnd.randint(2, 7200)

        hdr = [
            f"Return-Path: <{frm.split('<')[-1].rstrip('>')}>",
            f"Delivered-To: user@example.test",
            f"Received: from {rnd.choice(DOMAINS)} (unknown [192.0.2.{rnd.randint(1, 254)}])\n\tby {host} with ESMTPS id {rnd.getrandbits(48):012X}\n\tfor <user@example.test>; {rfc2822(secs)}",
            f"From: {frm}",
            f"To: {to}",
        ]
        if rnd.random() < 0.15:
            hdr.append(f"Cc: {rnd.choice(senders)}, {rnd.choice(senders)}")
        hdr += [f"Subject: {subject}", f"Date: {rfc2822(date_hdr)}", f"Message-ID: <{msgid}>"]
        if reply:
            parent = rnd.choice(recent_ids)
            hdr += [f"In-Reply-To: <{parent}>", f"References: <{parent}>"]
        if folder == ".Lists.rust":
            hdr += ["List-Id: Rust users <rust-users.lists.example.org>", "Precedence: list"]
        hdr += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
        recent_ids.append(msgid)
        if len(recent_ids) > 200:
            recent_ids.pop(0)

        head = "\n".join(hdr) + "\n\n"
        target = rnd.randint(2048, 8192)
        body_len = max(64, target - len(head.encode()))
        start = rnd.randrange(0, len(filler_lines) - 200)
        body_lines, n = [], 0
        j = start
        while n < body_len:
            body_lines.append(filler_lines[j])
            n += len(filler_lines[j]) + 1
            j += 1
        body = ("\n".join(body_lines) + "\n")[:body_len]
        if not body.endswith("\n"):
            body = body[:-1] + "\n"
        data = (head + body).encode()
        size = len(data)
        vsize = size + data.count(b"\n")
        base = f"{secs}.M{usec}P{pid}Q{q}.{host},S={size},W={vsize}"

        in_new = folder != ".Sent" and rnd.random() < 0.08
        if in_new:
            path = os.path.join(root, folder, "new", base)
            flags = ""
            expected["new"] += 1
        else:
            r = rnd.random()
            if folder == ".Sent":
                flags = "S"
            elif r < 0.55:
                flags = "S"
            elif r < 0.70:
                flags = "RS"
            elif r < 0.75:
                flags = "FS"
            elif r < 0.77:
                flags = "FRS"
            elif r < 0.79:
                flags = "Sa"
            else:
                flags = ""
            path = os.path.join(root, folder, "cur", f"{base}:2,{flags}")
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (secs, secs))

        seen = "S" in flags
        expected["seen"] += seen
        expected["flagged"] += "F" in flags
        expected["answered"] += "R" in flags
        expected["keyword_forwarded"] += "a" in flags
        expected["from_zimmermann"] += frm == zimmer
        expected["subject_quarterly_report"] += "quarterly report" in subject.lower()
        expected["since_2024_03_01_before_2024_04_01"] += d_2024_03 <= secs < d_2024_04
        in_2025 = d_2025 <= secs < d_2026
        expected["since_2025_01_01_before_2026_01_01"] += in_2025
        expected["zimmermann_and_seen_2025"] += frm == zimmer and seen and in_2025
        name = folder.lstrip(".") or "INBOX"
        expected["per_folder"][name] = expected["per_folder"].get(name, 0) + 1
        expected["bytes"] += size
        if (i + 1) % 10000 == 0:
            print(f"gen-maildir: {i + 1} messages, {time.time() - t_start:.0f} s", file=sys.stderr)

    with open(manifest_path, "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
    print(json.dumps(expected, sort_keys=True))


if __name__ == "__main__":
    main()
