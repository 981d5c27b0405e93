#!/usr/bin/env python3
"""soak.py - mailstow under steady load for a long time: lmtp-client sends
4 KiB messages to 100 users over 16 sessions at a fixed rate (half the peak
rate, say) while the server's RSS and CPU are sampled every 10 s, to show
that memory stays flat and nothing is lost. Must not touch anything outside
WORK (under /tmp) or send traffic anywhere but 127.0.0.1.

Usage (as root): benches/lmtp/soak.py --bin target/release/mailstow \\
    --client target/release/examples/lmtp-client --rate 600 --minutes 30 [--out DIR]
Output: DIR/soak.csv (seconds,rss_kib,cpu_s,files) and a summary on stdout.
"""
import argparse
import csv
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--client", required=True)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--out", default="/tmp/mailstow-soak-results")
    ap.add_argument("--work", default="/tmp/mailstow-soak")
    a = ap.parse_args()
    if not a.work.startswith("/tmp/"):
        raise SystemExit("soak: --work must be under /tmp")
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.work, exist_ok=True)
    os.chmod(a.work, 0o755)
    bench.ensure_setup()
    m = bench.Mailstow(a.work, os.path.abspath(a.bin))
    m.start("nosieve")
    m.wipe()
    count = int(a.rate * a.minutes * 60)
    rows = []
    try:
        p = subprocess.Popen([os.path.abspath(a.client), "--target", m.target, "-n", str(count),
                              "-c", "16", "--rate", str(a.rate), "--users", "100", "--label", "soak"],
                             stdout=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        cpu0 = bench.cpu_ticks(m.pid)
        while p.poll() is None:
            rss = bench.memory(m.pid)[0]
            rows.append((round(time.monotonic() - t0), rss,
                         round((bench.cpu_ticks(m.pid) - cpu0) / bench.HZ, 2)))
            time.sleep(10)
        out = p.stdout.read().strip()
        files = bench.count_files(m.root)
    finally:
        m.stop()
    with open(os.path.join(a.out, "soak.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seconds", "rss_kib", "cpu_s"])
        w.writerows(rows)
    print(out)
    print(f"files on disk: {files} of {count}")
    if rows:
        late = [r[1] for r in rows if r[0] >= 60]
        print(f"rss KiB: first {rows[0][1]}, after 1 min {late[0] if late else '-'}, "
              f"max {max(r[1] for r in rows)}, last {rows[-1][1]}")
        print(f"cpu s per 1000 deliveries: {rows[-1][2] * 1000 / max(count, 1):.3f}")


if __name__ == "__main__":
    main()
