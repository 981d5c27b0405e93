#!/usr/bin/env bash
# run.sh - the one command for the side-by-side benchmark: builds mailstow and
# lmtp-client (release), then runs bench.py (Dovecot's LMTP and mailstow, the
# full matrix, the disk floor and the memory/scale extras) and prints the
# tables. Must be run as root on a machine whose loopback ports 24024, 24200,
# 14143 are free; writes only under /tmp/mailstow-bench and OUT.
#
# Usage: sudo benches/lmtp/run.sh [OUT=/tmp/mailstow-bench-results] [bench.py options...]
#   e.g. benches/lmtp/run.sh /tmp/quick --sizes 4096 --concs 1,16 --scale 0.25 --no-extras
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:-/tmp/mailstow-bench-results}
shift || true
cd "$ROOT"
cargo build --release --locked --bin mailstow --example lmtp-client
python3 "$HERE/bench.py" --bin target/release/mailstow \
  --client target/release/examples/lmtp-client --out "$OUT" "$@"
cat "$OUT/results.md"
