#!/usr/bin/env bash
# headline.sh - the one command that regenerates BENCHMARKS.md's headline
# table against issue 19's targets: builds mailstow and lmtp-client (release)
# and runs benches/lmtp/headline.py, which measures exactly the cells the
# targets need in one run and prints target | measured | met?. Must be run as
# root on a quiet machine whose loopback ports 24024, 24200, 14143 and 25250
# are free; writes only under /tmp/mailstow-headline, its own cgroup and OUT.
#
# Usage: sudo benches/headline.sh OUT [headline.py options, e.g. --scale 0.15]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT=${1:?usage: headline.sh OUT [--scale S]}
shift
cd "$ROOT"
CARGO_INCREMENTAL=0 cargo build --release --locked --bin mailstow --example lmtp-client
python3 "$HERE/lmtp/headline.py" --bin target/release/mailstow \
  --client target/release/examples/lmtp-client --out "$OUT" "$@"
