#!/usr/bin/env python3
"""floor.py - the disk's floor for durable Maildir delivery: how many times per
second W writers can each do create(tmp/X) + write(SIZE) + fsync + close +
rename(tmp/X -> new/X) + fsync(new/), the minimal sequence that makes one
message durable. Every figure of the delivery benchmark can be read as a
fraction of this. Must not write outside DIR (it deletes what it wrote).

Usage: floor.py DIR [--sizes 4096,102400] [--writers 1,4,16,64] [--seconds 3]
                   [--layouts shared,own]
"shared": all writers in one directory (deliveries to one mailbox); "own":
each writer its own tmp/ and new/ (deliveries spread over users).
Output: CSV lines  size,writers,layout,ops,seconds,ops_per_s
"""
import argparse
import os
import shutil
import threading
import time


def writer(root, wid, payload, deadline, counts, own):
    if own:
        root = os.path.join(root, str(wid))
    tmp = os.path.join(root, "tmp")
    new = os.path.join(root, "new")
    dfd = os.open(new, os.O_RDONLY | os.O_DIRECTORY)
    n = 0
    try:
        while time.monotonic() < deadline:
            name = f"{wid}.{n}"
            t = os.path.join(tmp, name)
            fd = os.open(t, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, payload)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(t, os.path.join(new, name))
            os.fsync(dfd)
            n += 1
    finally:
        os.close(dfd)
    counts[wid] = n


def measure(base, size, writers, seconds, own):
    root = os.path.join(base, f"floor-{size}-{writers}")
    shutil.rmtree(root, ignore_errors=True)
    for w in range(writers if own else 1):
        for d in ("tmp", "new"):
            os.makedirs(os.path.join(root, str(w) if own else "", d))
    payload = (b"x" * 76 + b"\r\n") * (size // 78 + 1)
    payload = payload[:size]
    counts = [0] * writers
    t0 = time.monotonic()
    deadline = t0 + seconds
    ts = [threading.Thread(target=writer, args=(root, w, payload, deadline, counts, own)) for w in range(writers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.monotonic() - t0
    shutil.rmtree(root, ignore_errors=True)
    return sum(counts), wall


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--sizes", default="4096,102400")
    ap.add_argument("--writers", default="1,4,16,64")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--layouts", default="shared,own")
    ap.add_argument("--header", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    if a.header:
        print("size,writers,layout,ops,seconds,ops_per_s")
    for size in [int(s) for s in a.sizes.split(",")]:
        for w in [int(x) for x in a.writers.split(",")]:
            for layout in a.layouts.split(","):
                if w == 1 and layout == "own":
                    continue
                os.sync()
                n, wall = measure(a.dir, size, w, a.seconds, layout == "own")
                print(f"{size},{w},{layout},{n},{wall:.3f},{n / wall:.1f}", flush=True)


if __name__ == "__main__":
    main()
