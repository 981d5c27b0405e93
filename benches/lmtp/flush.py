#!/usr/bin/env python3
"""flush.py - [storage] flush = "per-file" against "grouped": mailstow
alone, 4 KiB, one recipient, smtp-source into one mailbox and lmtp-client
over 100 users, c=1 and c=16, the two settings alternating for --reps
repetitions (this disk's rate drifts between minutes: compare within a
repetition). Prints one line per cell. Must be run as root; writes only
under --work (below /tmp) and stops the server it starts.

Usage: sudo python3 benches/lmtp/flush.py --bin target/release/mailstow \\
           --client target/release/examples/lmtp-client [--count 2000] [--reps 2]
"""
import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def server(a, flush):
    m = bench.Mailstow(a.work, a.bin, port=a.port, sub=f"mailstow-{flush}")
    setup = m.setup

    def with_flush(mode):
        setup(mode)
        path = os.path.join(m.work, "mailstow.toml")
        with open(path) as f:
            text = f.read().replace("[storage]\n", f'[storage]\nflush = "{flush}"\n', 1)
        with open(path, "w") as f:
            f.write(text)
    m.setup = with_flush
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--client", required=True)
    ap.add_argument("--work", default="/tmp/mailstow-flush")
    ap.add_argument("--port", type=int, default=24210)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=2)
    a = ap.parse_args()
    if not a.work.startswith("/tmp/"):
        raise SystemExit("flush.py: --work must be under /tmp")
    a.bin, a.client = os.path.abspath(a.bin), os.path.abspath(a.client)
    os.makedirs(a.work, exist_ok=True)
    os.chmod(a.work, 0o755)
    bench.ensure_setup()
    try:
        for rep in range(a.reps):
            for flush in ("per-file", "grouped"):
                m = server(a, flush)
                m.start("nosieve")
                try:
                    for conc in (1, 16):
                        n = a.count if conc > 1 else a.count // 4
                        bench.settle(m, a)
                        r = bench.smtp_source(m, n, conc, 4096, 1)
                        print(rep, flush, f"smtp-source c={conc}", r["deliveries_per_s"], "/s",
                              r["cpu_s_per_1000"], "ms CPU", f"files {r['files_found']}/{r['expected']}",
                              flush=True)
                        bench.settle(m, a)
                        r = bench.client(a, m, n, conc, 4096, 1)
                        print(rep, flush, f"lmtp-client c={conc}", r["deliveries_per_s"], "/s",
                              r["cpu_s_per_1000"], "ms CPU", "p99", r["p99_ms"], "ms", flush=True)
                finally:
                    m.stop()
    finally:
        shutil.rmtree(a.work, ignore_errors=True)


if __name__ == "__main__":
    main()
