#!/usr/bin/env python3
# flag-renames.py - renames N message files in cur/ of a Maildir++ from one flag set to another (default 1000, ":2,S" -> ":2,RS"), as an IMAP client setting \Answered would; must not touch files outside the given Maildir, create or delete files, or change message contents.
"""Usage: flag-renames.py MAILDIR [-n 1000] [--from-info 2,S] [--to-info 2,RS] [--seed 1]

Picks N files (spread over all folders, deterministic for --seed) whose name
ends in :<from-info> and renames cur/X:<from-info> to cur/X:<to-info>.
Prints how many it renamed and per folder. Exit 1 if fewer than N qualify.
"""
import argparse
import os
import random
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("maildir")
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--from-info", default="2,S")
    ap.add_argument("--to-info", default="2,RS")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    root = os.path.abspath(a.maildir)
    folders = [""] + sorted(d for d in os.listdir(root)
                            if d.startswith(".") and os.path.isdir(os.path.join(root, d, "cur")))
    suffix = ":" + a.from_info
    cands = []
    for d in folders:
        cur = os.path.join(root, d, "cur")
        cands += [(d, n) for n in os.listdir(cur) if n.endswith(suffix)]
    if len(cands) < a.n:
        sys.exit(f"flag-renames: only {len(cands)} files end in {suffix}")
    cands.sort()
    pick = random.Random(a.seed).sample(cands, a.n)
    per = {}
    for d, n in pick:
        cur = os.path.join(root, d, "cur")
        os.rename(os.path.join(cur, n), os.path.join(cur, n[: -len(a.from_info)] + a.to_info))
        per[d or "INBOX"] = per.get(d or "INBOX", 0) + 1
    print(f"flag-renames: {a.n} renamed {suffix} -> :{a.to_info}: {per}")


if __name__ == "__main__":
    main()
