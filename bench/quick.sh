#!/usr/bin/env bash
# A quick loop for comparing two builds step by step, against the database bench/run.sh
# seeded (run `bench/run.sh --seed-only` once). For each scenario it serves the given
# binary (one HTTP worker unless HTTP_WORKERS says otherwise, pool 16 unless POOL_SIZE
# does), runs wrk and prints wrk's summary with the CPU time the server and PostgreSQL
# spent per request (utime + stime from /proc over the requests served), in microseconds.
#
#   bench/quick.sh BIN SECONDS CONNECTIONS SCENARIO...
#   scenarios: read status customer created write mwrite metrics context email tag
#   (metrics, context, email, tag: the merchant GETs of run.sh's scenarios of the same
#   names, from the path files run.sh wrote; write: the portal's
#   pause/resume on the next unused slice of subscriptions, as bench/run.sh takes them, see
#   bench/slices.sh; mwrite: the same through the merchant API with the merchant's key)
#   e.g. bench/quick.sh target/release/tenure 8 32 read status
set -euo pipefail
[ $# -ge 4 ] || { sed -n 2,10p "$0" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${BENCH_WORK_DIR:-$ROOT/target/bench}
BIN=$1 SECS=$2 CONNS=$3
shift 3
PORT=${BENCH_PORT:-18081}
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/${BENCH_DB:-tenure_bench}"
export TENURE_JWT_SECRET="tenure-bench-secret-0123456789abcdef0123456789" TENURE_LOG=warn
# Limits off unless the caller sets them (e.g. very high, to measure the shared check).
export TENURE_RATE_LIMIT_PER_SECOND=${TENURE_RATE_LIMIT_PER_SECOND:-0}
export TENURE_RATE_LIMIT_CUSTOMER_PER_SECOND=${TENURE_RATE_LIMIT_CUSTOMER_PER_SECOND:-0}
export BENCH_LUA_DIR="$ROOT/bench/lua" BENCH_CUSTOMERS_FILE="$WORK/data/customers.txt"
{ read -r _; read -r BENCH_MERCHANT_KEY; } <"$WORK/merchant"
export BENCH_MERCHANT_KEY
# shellcheck source=bench/slices.sh
. "$ROOT/bench/slices.sh"
SAMPLE="$WORK/data/portal-sample.txt"
[ -f "$SAMPLE" ] || shuf -n 10000 --random-source=<(yes) "$WORK/data/portal.txt" >"$SAMPLE"

TENURE_HTTP_WORKERS=${HTTP_WORKERS:-1} TENURE_POOL_SIZE=${POOL_SIZE:-16} "$BIN" serve \
  --bind "127.0.0.1:$PORT" --no-workers >"$WORK/quick-server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
postgres_ticks() {
  local sum=0 pid
  for pid in $(pgrep -x postgres); do sum=$((sum + $(cpu_ticks "$pid"))); done
  echo "$sum"
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))
BENCH_PORTAL_FILE="$SAMPLE" wrk -t2 -c8 -d2s -s "$BENCH_LUA_DIR/portal_read.lua" "http://127.0.0.1:$PORT" >/dev/null
for scenario in "$@"; do
  env_vars=(BENCH_PORTAL_FILE="$SAMPLE")
  case $scenario in
    read) script=portal_read.lua ;;
    status | customer | created) script=invoices.lua env_vars+=(BENCH_INVOICE_FILTER="$scenario") ;;
    write) script=portal_write.lua env_vars=(BENCH_PORTAL_FILE="$(slice_file "$(next_write_slice)")") ;;
    mwrite) script=merchant_write.lua env_vars=(BENCH_PORTAL_FILE="$(slice_file "$(next_write_slice)")") ;;
    metrics | context) script=merchant_get.lua env_vars+=(BENCH_PATHS_FILE="$WORK/data/paths-$scenario.txt") ;;
    email | tag) script=merchant_get.lua env_vars+=(BENCH_PATHS_FILE="$WORK/data/paths-search_$scenario.txt") ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
  esac
  server0=$(cpu_ticks $SERVER) pg0=$(postgres_ticks)
  out=$(env "${env_vars[@]}" wrk -t2 -c"$CONNS" -d"${SECS}s" -s "$BENCH_LUA_DIR/$script" \
    "http://127.0.0.1:$PORT" 2>&1)
  server1=$(cpu_ticks $SERVER) pg1=$(postgres_ticks)
  line=$(grep '^BENCH ' <<<"$out") || { echo "wrk failed: $out" >&2; exit 1; }
  requests=$(sed -E 's/.*"requests":([0-9]+).*/\1/' <<<"$line")
  echo "$scenario c=$CONNS ${line#BENCH } server_us_per_req=$(((server1 - server0) * TICK_US / requests)) postgres_us_per_req=$(((pg1 - pg0) * TICK_US / requests))"
done
