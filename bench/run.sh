#!/bin/sh
# sandcell benchmarks, side by side on this machine: cold (sandcell vs bare
# python3 vs bubblewrap) and warm (`sandcell serve`: latency, throughput,
# memory).  Writes bench/results.md.  About 3-5 minutes.
#
#   sh bench/run.sh [--quick] [--only cold|warm] [--out FILE]
#
# Builds the tree first (make), then measures $SANDCELL_BIN (default
# build/sandcell).  Run as root (the warm server and cold runs use the root
# setup: dedicated host uids, the /sandcell cgroup); on a quiet machine.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
if [ -z "${SANDCELL_BIN:-}" ]; then
	make -s all >/dev/null
	SANDCELL_BIN=$ROOT/build/sandcell
fi
for t in bwrap /usr/bin/python3; do
	command -v "$t" >/dev/null 2>&1 || { echo "bench: $t is missing" >&2; exit 1; }
done
exec /usr/bin/python3 "$ROOT/bench/bench.py" --sandcell "$SANDCELL_BIN" "$@"
