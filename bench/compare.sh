#!/usr/bin/env bash
# Issue 22: each figure of a run on the larger data set as a ratio of the same figure
# on the smaller one (req/s, p99, and each scenario against its same-statement ceiling),
# as a markdown table. Both files are bench/run.sh results (results.jsonl).
#
#   bench/compare.sh target/bench-100k/results.jsonl target/bench-1m/results.jsonl
set -euo pipefail
[ $# -eq 2 ] || { sed -n 2,6p "$0" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BENCH=${BENCH_BIN:-$TARGET_DIR/release/tenure-bench}
[ -x "$BENCH" ] || BENCH=$TARGET_DIR/debug/tenure-bench
exec "$BENCH" compare "$1" "$2"
