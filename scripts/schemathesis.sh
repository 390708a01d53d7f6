#!/usr/bin/env bash
# Schemathesis against the served OpenAPI document: builds and starts `tenure serve` on a
# free loopback port against a throwaway database, creates a demo merchant, then checks
# every /v1 operation with the merchant key and every /v1/portal operation with the
# customer token: no server errors, responses (status, content type, body) as documented.
# Also sends 10 MB bodies over a real socket, with and without Content-Length.
#
#   scripts/schemathesis.sh                      the short run CI does (about a minute)
#   TENURE_SCHEMATHESIS_EXAMPLES=200 \
#   TENURE_SCHEMATHESIS_PHASES=examples,coverage,fuzzing,stateful scripts/schemathesis.sh
#                                                a longer, deeper run
#
# Needs PostgreSQL (TENURE_TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres),
# curl and Python 3 (schemathesis is installed with pip if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

examples="${TENURE_SCHEMATHESIS_EXAMPLES:-15}"
phases="${TENURE_SCHEMATHESIS_PHASES:-examples,coverage,fuzzing}"
checks="${TENURE_SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance}"
# One worker: with two, Schemathesis' coverage phase sometimes crashes inside CPython 3.11.7
# ("SystemError: AST constructor recursion depth mismatch": the ast module's recursion
# counter is shared between threads before 3.11.8).
workers="${TENURE_SCHEMATHESIS_WORKERS:-1}"
admin_url="${TENURE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

if ! command -v schemathesis >/dev/null 2>&1; then
  python3 -m pip install --quiet schemathesis
fi

cargo build -p tenure-server --locked -q
bin=./target/debug/tenure

db="tenure_schemathesis_$$_$(date +%s)"
export DATABASE_URL="${admin_url%/*}/${db}"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:${port}"
TENURE_JWT_SECRET="$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
export TENURE_JWT_SECRET
# Schemathesis sends as fast as it can; limits are covered by the e2e tests.
export TENURE_RATE_LIMIT_PER_SECOND=0 TENURE_RATE_LIMIT_CUSTOMER_PER_SECOND=0 \
  TENURE_RATE_LIMIT_UNAUTHENTICATED_PER_SECOND=0
# No background workers: Schemathesis registers webhook endpoints with made-up URLs, and
# nothing may be sent anywhere but loopback.
export TENURE_NO_WORKERS=true
export TENURE_LOG="${TENURE_LOG:-warn}"
log="$(mktemp -t tenure-schemathesis.XXXXXX.log)"

server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  psql -q "$admin_url" -c "DROP DATABASE IF EXISTS \"${db}\" WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$bin" serve --bind "127.0.0.1:${port}" --http-workers 2 >"$log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "${base}/readyz" >/dev/null 2>&1 && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "tenure serve exited:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.2
done
curl -fsS "${base}/readyz" >/dev/null

demo="$("$bin" demo --base-url "$base")"
key="$(sed -n 's/^secret key: *//p' <<<"$demo")"
token="$(sed -n 's/^customer token: *//p' <<<"$demo")"
[[ -n "$key" && -n "$token" ]] || { echo "could not read the demo credentials" >&2; exit 1; }

status=0
echo "== 10 MB bodies over a socket"
for path in /v1/customers /v1/products; do
  for mode in length chunked; do
    if [[ "$mode" == length ]]; then
      extra=()
    else
      extra=(-H "Transfer-Encoding: chunked")
    fi
    code="$(head -c 10485760 /dev/zero | curl -s -o /dev/null -w '%{http_code}' \
      -X POST "${base}${path}" -H "Authorization: Bearer ${key}" \
      -H 'Content-Type: application/json' "${extra[@]}" --data-binary @- || true)"
    echo "POST ${path} (${mode}): ${code}"
    [[ "$code" == 413 ]] || status=1
  done
done

run() {
  local credential="$1"
  shift
  schemathesis run "${base}/openapi.json" \
    --header "Authorization: Bearer ${credential}" \
    --checks "$checks" \
    --phases "$phases" \
    --max-examples "$examples" \
    --workers "$workers" \
    --request-timeout 15 \
    --suppress-health-check all \
    --warnings off \
    "$@"
}

echo "== schemathesis: merchant routes with the secret key"
run "$key" --include-path-regex '^/v1/' --exclude-path-regex '^/v1/portal' || status=1
echo "== schemathesis: portal routes with the customer token"
run "$token" --include-path-regex '^/v1/portal' || status=1

if grep -q "request failed" "$log"; then
  echo "== server errors logged by tenure:" >&2
  grep "request failed" "$log" | head -20 >&2
  status=1
fi
exit "$status"
