#!/usr/bin/env bash
# Tenure benchmark: seeds a throwaway database, serves it with a release build, loads it
# from a second process (wrk on loopback) and measures pgbench on the same PostgreSQL as
# the ceiling. Prints a table; the JSON lines stay in $BENCH_WORK_DIR/results.jsonl.
#
#   bench/run.sh                 # full run: 100k customers/subscriptions, 10 s per point
#   bench/run.sh --quick         # smoke check: 5k customers, 3 s per point, one pool size
#   options: --no-build, --pools "16 32", --workers "1 2" (HTTP workers; each pair of
#            workers and pool size is one configuration), --duration S, --customers N,
#            --skip-seed (reuse the database of the previous run), --seed-only,
#            --label TEXT (names this binary's rows), --baseline BIN (also measure another
#            `tenure` binary, e.g. a build of the previous commit, first pool size only,
#            interleaved in the same run so both see the same machine), --debug (build
#            and run debug binaries, for proving the tooling on small seeds),
#            --no-ceilings (skip the same-statement pgbench scripts of bench/pgbench/),
#            --conns "8 32" (wrk connections per point, default 8 32 128),
#            --scenarios "portal_read metrics" (a subset, in the default order's names)
#   environment: BENCH_DB (database, default tenure_bench; its pgbench database is
#            BENCH_DB_pgbench, or tenure_pgbench for the default), BENCH_PORT (18080),
#            BENCH_WORK_DIR (target/bench), TENURE_BIN / BENCH_BIN (the binaries; default
#            $CARGO_TARGET_DIR or target/, release or debug)
#
# Issue 22: two sizes side by side, then the ratio table:
#   BENCH_WORK_DIR=target/bench-100k bench/run.sh --customers 100000 ...
#   BENCH_WORK_DIR=target/bench-1m bench/run.sh --customers 1000000 ...
#   bench/compare.sh target/bench-100k/results.jsonl target/bench-1m/results.jsonl
#
# Only 127.0.0.1 is ever a target; every load step is bounded by wrk's/pgbench's -d/-T.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUICK=0
BUILD=1
SEED=1
POOLS=""
HTTP_WORKERS=""
DURATION=""
CUSTOMERS=""
LABEL="current"
BASELINE=""
SEED_ONLY=0
CONNS=""
SCENARIOS="portal_read portal_write invoices_status invoices_customer invoices_created metrics context search_email search_tag"
PROFILE=release
CEILINGS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --no-build) BUILD=0 ;;
    --skip-seed) SEED=0 ;;
    --pools) POOLS="$2"; shift ;;
    --workers) HTTP_WORKERS="$2"; shift ;;
    --duration) DURATION="$2"; shift ;;
    --customers) CUSTOMERS="$2"; shift ;;
    --label) LABEL="$2"; shift ;;
    --baseline) BASELINE="$2"; shift ;;
    --seed-only) SEED_ONLY=1 ;;
    --debug) PROFILE=debug ;;
    --no-ceilings) CEILINGS=0 ;;
    --conns) CONNS="$2"; shift ;;
    --scenarios) SCENARIOS="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$QUICK" = 1 ]; then
  : "${CUSTOMERS:=5000}" "${DURATION:=3}" "${POOLS:=16}"
  PG_SCALE=2
else
  : "${CUSTOMERS:=100000}" "${DURATION:=10}" "${POOLS:=16 32}"
  PG_SCALE=10
fi
CONNS=${CONNS:-8 32 128}
PGHOST=127.0.0.1
PGPORT=5432
PGUSER=postgres
export PGHOST PGPORT PGUSER
DB=${BENCH_DB:-tenure_bench}
if [ "$DB" = tenure_bench ]; then PGB_DB=tenure_pgbench; else PGB_DB=${DB}_pgbench; fi
PORT=${BENCH_PORT:-18080}
BASE="http://127.0.0.1:$PORT"
WORK=${BENCH_WORK_DIR:-$ROOT/target/bench}
RESULTS="$WORK/results.jsonl"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
export TENURE_JWT_SECRET="tenure-bench-secret-0123456789abcdef0123456789"
export TENURE_LOG=${TENURE_LOG:-warn}
# The load comes from one merchant key: with the default limits (100/s per key) the
# merchant scenarios would measure the rate limiter's 429s, not the service.
export TENURE_RATE_LIMIT_PER_SECOND=0 TENURE_RATE_LIMIT_CUSTOMER_PER_SECOND=0
export BENCH_LUA_DIR="$ROOT/bench/lua"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
TENURE="${TENURE_BIN:-$TARGET_DIR/$PROFILE/tenure}"
BENCH="${BENCH_BIN:-$TARGET_DIR/$PROFILE/tenure-bench}"
SERVER_PID=""

say() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
trap stop_server EXIT

start_server() { # pool size, HTTP workers ("" = one per core), [binary]
  stop_server
  local workers_env=()
  [ -n "$2" ] && workers_env=(TENURE_HTTP_WORKERS="$2")
  env "${workers_env[@]}" TENURE_POOL_SIZE="$1" "${3:-$TENURE}" serve --bind "127.0.0.1:$PORT" --no-workers \
    >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    if curl -fsS "$BASE/healthz" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "server did not start; see $WORK/server.log" >&2
  exit 1
}

field() { # json key -> value (numbers or simple strings), without jq
  sed -E "s/.*\"$2\": ?\"?([^\",}]*)\"?.*/\1/" <<<"$1"
}

# The same-statement ceilings (bench/pgbench/*.sql) draw their ids from tables of the
# seeded data, numbered 1..n, in a schema of their own that Tenure never reads:
# bench.customers (each customer with its subscription and e-mail) and bench.tags (the
# tags the search scenario draws from). bench.write_subs holds the subscriptions of the
# last write slice (see slices.sh), which only the write ceiling's script touches.
draw_tables() {
  psql -q -v ON_ERROR_STOP=1 -d "$DB" <<SQL
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;
CREATE TABLE bench.customers AS
  SELECT row_number() OVER (ORDER BY c.id)::int AS n, c.merchant_id, c.id AS customer_id,
         s.id AS subscription_id, tenure_typeid('sub', s.id) AS sub_ref, c.email
    FROM customers c JOIN subscriptions s ON s.merchant_id = c.merchant_id AND s.customer_id = c.id;
ALTER TABLE bench.customers ADD PRIMARY KEY (n);
CREATE TABLE bench.tags (n int PRIMARY KEY, tag text NOT NULL);
INSERT INTO bench.tags SELECT row_number() OVER (), t FROM unnest(string_to_array('$(paste -sd, "$WORK/data/tags.txt")', ',')) AS t;
ANALYZE bench.customers;
ANALYZE bench.tags;
SQL
}

mkdir -p "$WORK"
: >"$WORK/server.log"

command -v wrk >/dev/null || { apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }; }
command -v pgbench >/dev/null || { echo "pgbench is missing (postgresql-client)" >&2; exit 1; }

if [ "$BUILD" = 1 ]; then
  say "building ($PROFILE)"
  profile_flag=(--release)
  [ "$PROFILE" = debug ] && profile_flag=()
  (cd "$ROOT" && cargo build "${profile_flag[@]}" -q -p tenure-server -p tenure-bench)
fi

if [ "$SEED" = 1 ]; then
  T0=$(date +%s)
  say "database $DB: recreate and migrate"
  dropdb --if-exists --force "$DB"
  rm -f "$WORK/next_write_slice"
  "$TENURE" migrate >/dev/null
  MJSON=$("$TENURE" merchant create --name "Bench Co" --json)
  MERCHANT=$(field "$MJSON" id)
  KEY=$(field "$MJSON" secret_key)
  printf '%s\n%s\n' "$MERCHANT" "$KEY" >"$WORK/merchant"
  start_server 4 ""
  auth=(-H "Authorization: Bearer $KEY" -H "Content-Type: application/json")
  PJSON=$(curl -fsS "${auth[@]}" "$BASE/v1/products" \
    -d '{"name":"Bench box","description":"Seeded by bench/run.sh"}')
  PRODUCT=$(field "$PJSON" id)
  for plan in "Monthly|1999|month" "Monthly plus|2999|month" "Yearly|19900|year"; do
    IFS='|' read -r name amount interval <<<"$plan"
    curl -fsS "${auth[@]}" "$BASE/v1/plans" -d "{\"product_id\":\"$PRODUCT\",\"name\":\"$name\",\"price\":{\"amount\":$amount,\"currency\":\"EUR\"},\"interval\":\"$interval\"}" >/dev/null
  done
  curl -fsS "${auth[@]}" "$BASE/v1/plans?limit=100" >"$WORK/plans.json"
  stop_server
  say "generating $CUSTOMERS customers/subscriptions with history"
  "$BENCH" seed --merchant "$MERCHANT" --plans "$WORK/plans.json" --customers "$CUSTOMERS" --out "$WORK/data"
  say "loading with COPY"
  # The generated rows are consistent by construction, so the load skips the per-row
  # foreign-key triggers (session_replication_role = replica) for speed.
  psql -q -v ON_ERROR_STOP=1 -d "$DB" <<SQL
SET session_replication_role = replica;
\copy customers (merchant_id, id, external_id, email, name, locale, metadata, tags, created_at, updated_at) from '$WORK/data/customers.copy'
\copy subscriptions (merchant_id, id, customer_id, product_id, plan_id, status, current_period_end, state, created_at, updated_at) from '$WORK/data/subscriptions.copy'
\copy invoices (merchant_id, id, number, customer_id, subscription_id, period_start, period_end, status, currency, total, amount_paid, amount_refunded, attempt_count, created_at, updated_at, paid_at) from '$WORK/data/invoices.copy'
\copy invoice_lines (merchant_id, invoice_id, position, kind, description, amount) from '$WORK/data/invoice_lines.copy'
\copy payments (merchant_id, id, invoice_id, customer_id, payment_method_id, amount, currency, status, gateway, gateway_ref, failure_code, failure_message, idempotency_key, amount_refunded, created_at) from '$WORK/data/payments.copy'
\copy events (merchant_id, id, event_type, resource_type, resource_id, data, previous_attributes, created_at) from '$WORK/data/events.copy'
INSERT INTO invoice_counters (merchant_id, next_number)
  SELECT id, $(cat "$WORK/data/next_invoice_number") FROM merchants
  ON CONFLICT (merchant_id) DO UPDATE SET next_number = EXCLUDED.next_number;
SET session_replication_role = origin;
-- The load bypassed the triggers that keep customer_tags too (docs/scaling.md).
SELECT tenure_customer_tags_rebuild(id) FROM merchants \g /dev/null
VACUUM ANALYZE;
SQL
  # The load bypassed the triggers that keep the metric rollups (docs/metrics.md), so
  # they are rebuilt from the loaded rows, as an operator would after a repair.
  say "rebuilding the metric rollups"
  "$TENURE" metrics rebuild --merchant "$MERCHANT" >/dev/null
  draw_tables
  T1=$(date +%s)
  say "seeded in $((T1 - T0)) s: $(psql -Atd "$DB" -c "select (select count(*) from customers)||' customers, '||(select count(*) from subscriptions)||' subscriptions, '||(select count(*) from invoices)||' invoices, '||(select count(*) from payments)||' payments, '||(select count(*) from events)||' events, '||pg_size_pretty(pg_database_size(current_database()))")"
else
  { read -r MERCHANT; read -r KEY; } <"$WORK/merchant"
fi
# wrk's Lua loads its input once per thread, slowly for large files: the read test picks
# from a random sample of 10,000 (subscription, token) pairs spread over the whole data
# set, and each write run gets a file holding just its own slice.
# shellcheck source=bench/slices.sh
. "$ROOT/bench/slices.sh"
read -r WRITE_FROM WRITE_TO <<<"$(write_part)"
head -n $((WRITE_FROM - 1)) "$WORK/data/portal.txt" |
  shuf -n 10000 --random-source=<(yes) >"$WORK/data/portal-sample.txt"
export BENCH_PORTAL_FILE="$WORK/data/portal-sample.txt"
# The merchant GETs of issue 22 (bench/lua/merchant_get.lua): one file of paths each.
echo /v1/metrics >"$WORK/data/paths-metrics.txt"
shuf -n 10000 --random-source=<(yes) "$WORK/data/customers.txt" |
  sed 's|.*|/v1/customers/&/context|' >"$WORK/data/paths-context.txt"
shuf -n 10000 --random-source=<(yes) "$WORK/data/emails.txt" |
  sed 's/@/%40/; s|.*|/v1/customers?email=\0\&limit=20|' >"$WORK/data/paths-search_email.txt"
sed 's/:/%3A/; s|.*|/v1/customers?tag=\0\&limit=20|' "$WORK/data/tags.txt" >"$WORK/data/paths-search_tag.txt"
[ "$SEED_ONLY" = 1 ] && exit 0
: >"$RESULTS"
export BENCH_CUSTOMERS_FILE="$WORK/data/customers.txt"
export BENCH_MERCHANT_KEY="$KEY"
export BENCH_THREADS=2

FIRST_SLICE=$(cat "$WORK/next_write_slice" 2>/dev/null || echo 0)
WRITE_RUNS=$((3 * $(wc -w <<<"${POOLS}") * $(wc -w <<<"${HTTP_WORKERS:-cores}")))
if [ $((FIRST_SLICE + WRITE_RUNS)) -gt "$BENCH_SLICES" ]; then
  say "warning: this run reuses write slices (reseed with --seed-only for clean portal_write figures)"
fi

measure() { # label scenario conns pool workers script [ENV=VALUE...]
  local label=$1 scenario=$2 conns=$3 pool=$4 workers=$5 script=$6
  shift 6
  local out line frag rss hwm
  out=$(env "$@" wrk -t2 -c"$conns" -d"${DURATION}s" -s "$BENCH_LUA_DIR/$script" "$BASE" 2>&1) || true
  line=$(grep '^BENCH ' <<<"$out" || true)
  if [ -z "$line" ]; then
    echo "wrk failed: $out" >&2
    return 0
  fi
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status")
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
  frag=${line#BENCH }
  frag=${frag%\}}
  echo "$frag,\"kind\":\"wrk\",\"label\":\"$label\",\"scenario\":\"$scenario\",\"conns\":$conns,\"pool\":$pool,\"workers\":$workers,\"rss_kb\":$rss,\"hwm_kb\":$hwm}" >>"$RESULTS"
  say "$label $scenario c=$conns pool=$pool workers=$workers: $(field "$line" rps) req/s p50 $(field "$line" p50_ms) ms p99 $(field "$line" p99_ms) ms non2xx $(field "$line" non2xx) rss ${rss} kB"
}

# The ceiling: pgbench against the same server, measured next to each HTTP point (the
# machine's speed drifts over minutes, so a ceiling measured at the end would flatter or
# sink the ratios). PostgreSQL here allows 100 connections, shared with other users of
# the server, so the 128-connection point runs pgbench with 64 clients (the plateau on
# 2 cores) instead.
say "pgbench: initialising $PGB_DB (scale $PG_SCALE)"
dropdb --if-exists --force "$PGB_DB"
createdb "$PGB_DB"
pgbench -i -q -s "$PG_SCALE" "$PGB_DB" >/dev/null 2>&1
# pgbench's own p50/p99 come from its per-transaction log (`--log`: the third field of
# each line is the transaction's latency in µs): they show what latency the database
# alone gives at that concurrency, the floor under any endpoint's. A tenth of the
# transactions are logged, so that writing the log costs pgbench little of the CPU it
# shares with the server it measures.
PGB_LOG_DIR="$WORK/pgbench-log"
ceiling() { # label pool workers conns
  local pc=$4 mode name out tps lat percentiles p50 p99
  [ "$pc" -gt 64 ] && pc=64
  for mode in S N; do
    name=select_only
    [ "$mode" = N ] && name=simple_update
    rm -rf "$PGB_LOG_DIR" && mkdir -p "$PGB_LOG_DIR"
    out=$(cd "$PGB_LOG_DIR" && pgbench "-$mode" -c "$pc" -j 2 -T "$DURATION" --log \
      --sampling-rate=0.1 "$PGB_DB" 2>/dev/null)
    tps=$(sed -nE 's/^tps = ([0-9.]+).*/\1/p' <<<"$out" | head -1)
    lat=$(sed -nE 's/^latency average = ([0-9.]+) ms.*/\1/p' <<<"$out" | head -1)
    percentiles=$({ cat "$PGB_LOG_DIR"/pgbench_log.* 2>/dev/null || true; } | awk '{print $3}' | sort -n |
      awk '{v[NR] = $1} END { if (NR) printf "%.3f %.3f", v[int((NR - 1) * 0.5) + 1] / 1000, v[int((NR - 1) * 0.99) + 1] / 1000; else print "0 0" }')
    read -r p50 p99 <<<"$percentiles"
    echo "{\"kind\":\"pgbench\",\"label\":\"$1\",\"pool\":$2,\"workers\":$3,\"scenario\":\"$name\",\"conns\":$4,\"clients\":$pc,\"rps\":${tps:-0},\"latency_avg_ms\":${lat:-0},\"p50_ms\":$p50,\"p99_ms\":$p99}" >>"$RESULTS"
    say "pgbench -$mode -c $pc: $tps tps, latency average $lat ms, p50 $p50 ms, p99 $p99 ms"
  done
  rm -rf "$PGB_LOG_DIR"
}

# The second ceiling (issue 22): for each scenario, pgbench running the statements its
# endpoint runs, in the same order and transactions, on the seeded database itself, with
# ids drawn at random from bench.* (bench/pgbench/README.md says how the scripts were
# captured). Measured just before the scenario's HTTP point, with as many clients as
# it has connections (at most 64, as above); the server's pool stays idle meanwhile.
MERCHANT_UUID=$(psql -Atd "$DB" -c "select merchant_id from bench.customers limit 1" 2>/dev/null || true)
DRAW_CUSTOMERS=$(psql -Atd "$DB" -c "select count(*) from bench.customers" 2>/dev/null || echo 0)
DRAW_TAGS=$(psql -Atd "$DB" -c "select count(*) from bench.tags" 2>/dev/null || echo 0)
same_statements() { # label pool workers conns scenario
  local pc=$4 script="$ROOT/bench/pgbench/$5.sql" out tps lat percentiles p50 p99
  [ "$CEILINGS" = 1 ] && [ -f "$script" ] && [ -n "$MERCHANT_UUID" ] || return 0
  [ "$pc" -gt 64 ] && pc=64
  rm -rf "$PGB_LOG_DIR" && mkdir -p "$PGB_LOG_DIR"
  out=$(cd "$PGB_LOG_DIR" && pgbench -n -M prepared -f "$script" -c "$pc" -j 2 -T "$DURATION" \
    -D merchant="$MERCHANT_UUID" -D customers="$DRAW_CUSTOMERS" -D tags="$DRAW_TAGS" \
    -D slice_from="$WRITE_FROM" -D slice_to="$WRITE_TO" \
    --log --sampling-rate=0.1 "$DB" 2>&1) || { echo "pgbench $5 failed: $out" >&2; return 0; }
  tps=$(sed -nE 's/^tps = ([0-9.]+).*/\1/p' <<<"$out" | head -1)
  lat=$(sed -nE 's/^latency average = ([0-9.]+) ms.*/\1/p' <<<"$out" | head -1)
  percentiles=$({ cat "$PGB_LOG_DIR"/pgbench_log.* 2>/dev/null || true; } | awk '{print $3}' | sort -n |
    awk '{v[NR] = $1} END { if (NR) printf "%.3f %.3f", v[int((NR - 1) * 0.5) + 1] / 1000, v[int((NR - 1) * 0.99) + 1] / 1000; else print "0 0" }')
  read -r p50 p99 <<<"$percentiles"
  echo "{\"kind\":\"same\",\"label\":\"$1\",\"pool\":$2,\"workers\":$3,\"scenario\":\"$5\",\"conns\":$4,\"clients\":$pc,\"rps\":${tps:-0},\"latency_avg_ms\":${lat:-0},\"p50_ms\":$p50,\"p99_ms\":$p99}" >>"$RESULTS"
  say "same statements $5 -c $pc: $tps tps, p50 $p50 ms, p99 $p99 ms"
  if [ "$5" = portal_write ]; then # put the write ceiling's part back as it was seeded
    psql -q -v ON_ERROR_STOP=1 -d "$DB" <<SQL
UPDATE subscriptions s SET status = 'active', state = jsonb_set(s.state, '{status}', '"active"')
  FROM bench.customers b
 WHERE b.n BETWEEN $WRITE_FROM AND $WRITE_TO AND s.merchant_id = b.merchant_id
   AND s.id = b.subscription_id AND s.status = 'paused';
DELETE FROM scheduled_changes WHERE payload @> '{"requested_by": "bench-ceiling"}';
DELETE FROM events WHERE request_id = 'bench-ceiling';
SQL
  fi
  rm -rf "$PGB_LOG_DIR"
}

CONFIGS=()
FIRST_POOL=${POOLS%% *}
WORKER_COUNTS=${HTTP_WORKERS:-cores}
FIRST_WORKERS=${WORKER_COUNTS%% *}
[ -n "$BASELINE" ] && CONFIGS+=("baseline|$BASELINE|$FIRST_POOL|$FIRST_WORKERS")
for workers in $WORKER_COUNTS; do
  for pool in $POOLS; do CONFIGS+=("$LABEL|$TENURE|$pool|$workers"); done
done
for config in "${CONFIGS[@]}"; do
  IFS='|' read -r label bin pool workers <<<"$config"
  [ "$workers" = cores ] && workers=""
  start_server "$pool" "$workers" "$bin"
  workers=${workers:-$(nproc)}
  # Warm up: the first requests pay for connections and cold pages.
  wrk -t2 -c8 -d2s -s "$BENCH_LUA_DIR/portal_read.lua" "$BASE" >/dev/null 2>&1 || true
  for c in $CONNS; do
    ceiling "$label" "$pool" "$workers" "$c"
    for scenario in $SCENARIOS; do
      same_statements "$label" "$pool" "$workers" "$c" "$scenario"
      case $scenario in
        portal_read) args=(portal_read.lua) ;;
        portal_write) args=(portal_write.lua BENCH_PORTAL_FILE="$(slice_file "$(next_write_slice)")") ;;
        invoices_*) args=(invoices.lua BENCH_INVOICE_FILTER="${scenario#invoices_}") ;;
        metrics | context | search_email | search_tag)
          args=(merchant_get.lua BENCH_PATHS_FILE="$WORK/data/paths-$scenario.txt") ;;
        *) echo "unknown scenario $scenario" >&2; exit 2 ;;
      esac
      measure "$label" "$scenario" "$c" "$pool" "$workers" "${args[@]}"
    done
  done
  stop_server
done
dropdb --if-exists --force "$PGB_DB"

echo
echo "## $(date -u '+%Y-%m-%d %H:%M UTC'), nproc $(nproc), $(psql -Atd postgres -c 'show server_version'), load before report: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
"$BENCH" report "$RESULTS"
