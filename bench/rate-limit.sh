#!/usr/bin/env bash
# The database's cost of a shared rate-limit check (docs/hardening.md): pgbench running
# the very upsert `tenure_store::repo::rate_limits::take` sends, on 1,000 keys and on one
# hot key, beside `SELECT 1` (a bare round trip). Uses a scratch database it creates and
# drops; a few seconds per point.
#
#   bench/rate-limit.sh [SECONDS] [CLIENTS]      e.g. bench/rate-limit.sh 5 4
set -euo pipefail
SECS=${1:-5} CLIENTS=${2:-4}
SERVER=${BENCH_SERVER:-"-h 127.0.0.1 -U postgres"}
DB=tenure_bench_rate_limit
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; psql $SERVER -qc "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1' EXIT
# shellcheck disable=SC2086
psql $SERVER -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
# shellcheck disable=SC2086
psql $SERVER -q -d "$DB" -f "$ROOT"/migrations/*_rate_limit_buckets/up.sql
# The statement as the store sends it, at 100/s with a burst of 200 (the default merchant
# limit), so nearly every check is allowed, as in normal traffic.
take() {
  echo "\\set k random(1, $1)"
  echo "WITH clock AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now_us) \
INSERT INTO rate_limit_buckets AS b (key, tat_us, allowed) SELECT 'm:' || :k, clock.now_us + 10000, true FROM clock \
ON CONFLICT (key) DO UPDATE SET \
allowed = greatest(b.tat_us, excluded.tat_us - 10000) + 10000 <= excluded.tat_us - 10000 + 2000000, \
tat_us = CASE WHEN greatest(b.tat_us, excluded.tat_us - 10000) + 10000 <= excluded.tat_us - 10000 + 2000000 \
THEN greatest(b.tat_us, excluded.tat_us - 10000) + 10000 ELSE b.tat_us END \
RETURNING b.allowed, b.tat_us - (SELECT now_us FROM clock) AS ahead_us;"
}
echo 'SELECT 1;' >"$WORK/one.sql"
take 1000 >"$WORK/keys.sql"
take 1 >"$WORK/hot.sql"
for c in 1 "$CLIENTS"; do
  for script in one keys hot; do
    # shellcheck disable=SC2086
    out=$(pgbench $SERVER -n -M prepared -c "$c" -j "$(((c + 1) / 2))" -T "$SECS" \
      -f "$WORK/$script.sql" "$DB" 2>&1)
    printf '%-5s c=%-2s %s, %s\n' "$script" "$c" \
      "$(grep -o 'latency average = [0-9.]* ms' <<<"$out")" \
      "$(grep -oE 'tps = [0-9]+' <<<"$out")"
  done
done
