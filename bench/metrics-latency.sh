#!/usr/bin/env bash
# GET /v1/metrics one request at a time (issue 22's "under 50 ms"): the default period and
# the last 366 days, 15 requests each after one warm-up, min/median/max.
#
#   bench/metrics-latency.sh DB WORK_DIR [DB WORK_DIR ...]
#     DB: a database seeded by bench/run.sh; WORK_DIR: its BENCH_WORK_DIR (holds `merchant`)
#   environment: TENURE_BIN (default target/release/tenure), BENCH_PORT (18093)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${TENURE_BIN:-target/release/tenure}
PORT=${BENCH_PORT:-18093}
BASE="http://127.0.0.1:$PORT"
while [ $# -ge 2 ]; do
  db=$1 work=$2
  shift 2
  DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" \
    TENURE_JWT_SECRET="tenure-bench-secret-0123456789abcdef0123456789" TENURE_LOG=warn \
    TENURE_RATE_LIMIT_PER_SECOND=0 "$BIN" serve --bind "127.0.0.1:$PORT" --no-workers \
    >"$work/metrics-latency.log" 2>&1 &
  pid=$!
  trap 'kill $pid 2>/dev/null' EXIT
  for _ in $(seq 1 100); do curl -fsS "$BASE/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  key=$(sed -n 2p "$work/merchant")
  from=$(date -u -d '366 days ago' +%Y-%m-%dT%H:%M:%SZ)
  to=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  for period in default 366; do
    query=""
    [ "$period" = 366 ] && query="?from=$from&to=$to"
    get() { curl -fsS -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $key" "$BASE/v1/metrics$query"; }
    get >/dev/null
    figures=$(for _ in $(seq 1 15); do get; done | sort -n |
      awk '{a[NR] = $1 * 1000} END {printf "min %.1f median %.1f max %.1f ms", a[1], a[int((NR + 1) / 2)], a[NR]}')
    echo "$db metrics, period $period: $figures"
  done
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  trap - EXIT
done
