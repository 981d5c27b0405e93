#!/usr/bin/env python3
"""bigmailbox.py - does a full mailbox make delivery slower? mailstow with
user0 holding a generated 100,000-message Maildir (benches/index/
gen-maildir.py, indexed with `mailstow index rebuild`) and user10 empty;
lmtp-client delivers 4 KiB messages to each in turn (interleaved, REPS
times, concurrency 1 and 16). Must not touch anything outside WORK (under
/tmp) or send traffic anywhere but 127.0.0.1.

Usage (as root): benches/lmtp/bigmailbox.py --bin target/release/mailstow \\
    --client target/release/examples/lmtp-client [--count 100000] [--reps 2]
Output: one line per run on stdout (mailbox, concurrency, deliveries/s, p50, p99).
"""
import argparse
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--client", required=True)
    ap.add_argument("--count", type=int, default=100000)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--n", type=int, default=2000, help="messages per run")
    ap.add_argument("--work", default="/tmp/mailstow-big")
    a = ap.parse_args()
    if not a.work.startswith("/tmp/"):
        raise SystemExit("bigmailbox: --work must be under /tmp")
    bench.ensure_setup()
    os.makedirs(a.work, exist_ok=True)
    os.chmod(a.work, 0o755)
    m = bench.Mailstow(a.work, os.path.abspath(a.bin), nusers=11)
    m.start("nosieve")
    m.stop()
    big = os.path.join(m.root, "user0", "Maildir")
    shutil.rmtree(big, ignore_errors=True)
    shutil.rmtree(os.path.join(m.root, "user0", ".mailstow"), ignore_errors=True)
    bench.run([sys.executable, os.path.join(HERE, "..", "index", "gen-maildir.py"), big,
               "--count", str(a.count), "--manifest", os.path.join(a.work, "manifest.json")],
              stdout=subprocess.DEVNULL)
    bench.run(["chown", "-R", "vmail:vmail", os.path.join(m.root, "user0")])
    conf = os.path.join(m.work, "mailstow.toml")
    bench.run([a.bin, "index", "rebuild", "user0@example.test", "--config", conf],
              stdout=subprocess.DEVNULL)
    bench.run(["chown", "-R", "vmail:vmail", os.path.join(m.root, "user0")])
    os.sync()
    m.start("nosieve")
    try:
        for rep in range(a.reps):
            for conc in (1, 16):
                for name, prefix in (("100,000 messages", "user"), ("empty", "user1")):
                    # --users 1: always {prefix}0, i.e. user0 or user10
                    r = bench.client(a, m, a.n, conc, 4096, 1, users=1,
                                     extra=("--user-prefix", prefix))
                    print(f"rep {rep} {name:16} c={conc:2}: {r['deliveries_per_s']}/s "
                          f"p50 {r['p50_ms']} p99 {r['p99_ms']} ms cpu/1000 {r['cpu_s_per_1000']}",
                          flush=True)
    finally:
        m.stop()


if __name__ == "__main__":
    main()
