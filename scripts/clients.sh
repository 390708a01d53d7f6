#!/usr/bin/env bash
# Generated clients: proves openapi/openapi.json (which CI already proves equal to what
# `tenure openapi` prints) is valid and turns into clean SDKs.
#
#   1. openapi-spec-validator (PyPI) accepts the document, and scripts/check-openapi.py
#      finds every closed set an enum and every operation's security and error
#      responses declared (and none it cannot answer);
#   2. openapi-python-client (PyPI) generates a Python client into a temporary directory
#      with --fail-on-warning, and every operationId is a module of it;
#   3. @hey-api/openapi-ts (npm, pinned in sdk/typescript/package-lock.json) regenerates
#      the TypeScript SDK into a temporary directory: it must equal the committed
#      sdk/typescript/src/generated/ (no drift), and its functions must be exactly the
#      operationIds, camelCased (nothing renamed to `listSubscriptions2`, nothing dropped);
#   4. tsc --noEmit type-checks the SDK with its hand-written wrapper (sdk/typescript/src)
#      and the wrapper's tests, which then run (node --test through tsx).
#
# Installs what is missing: the two PyPI tools with pip into the current Python, the npm
# packages with `npm ci`. About 15 s once installed.
set -euo pipefail
cd "$(dirname "$0")/.."

document=openapi/openapi.json
sdk=sdk/typescript
work="$(mktemp -d -t tenure-clients.XXXXXX)"
trap 'rm -rf "$work"' EXIT

for tool in openapi-spec-validator openapi-python-client; do
  command -v "$tool" >/dev/null 2>&1 || python3 -m pip install --quiet "$tool"
done
if [[ ! -d "$sdk/node_modules" || "$sdk/package-lock.json" -nt "$sdk/node_modules" ]]; then
  (cd "$sdk" && npm ci --no-audit --no-fund --silent)
fi

echo "== openapi-spec-validator"
openapi-spec-validator "$document"

# The operationIds, for comparing with what each generator made of them.
python3 - "$document" >"$work/operation_ids" <<'EOF'
import json, sys
document = json.load(open(sys.argv[1]))
for item in document["paths"].values():
    for operation in item.values():
        if isinstance(operation, dict) and "operationId" in operation:
            print(operation["operationId"])
EOF

echo "== closed sets as enums, security and error responses (scripts/check-openapi.py)"
python3 scripts/check-openapi.py "$document"

echo "== openapi-python-client"
(cd "$work" && openapi-python-client generate --path "$OLDPWD/$document" --meta none \
  --output-path python --fail-on-warning) >"$work/python.log" 2>&1 \
  || { cat "$work/python.log" >&2; echo "openapi-python-client failed or warned" >&2; exit 1; }
if grep -qi "warning" "$work/python.log"; then
  cat "$work/python.log" >&2
  exit 1
fi
missing=0
while read -r id; do
  if ! compgen -G "$work/python/api/*/${id}.py" >/dev/null; then
    echo "the Python client has no module for operation ${id}" >&2
    missing=1
  fi
done <"$work/operation_ids"
[[ "$missing" == 0 ]]
echo "$(wc -l <"$work/operation_ids") operations, each a module"

echo "== @hey-api/openapi-ts"
(cd "$sdk" && TENURE_SDK_OUT="$work/typescript" npx --no-install openapi-ts) >"$work/typescript.log" 2>&1 \
  || { cat "$work/typescript.log" >&2; exit 1; }
if grep -qiE "warn|error" "$work/typescript.log"; then
  cat "$work/typescript.log" >&2
  echo "openapi-ts warned" >&2
  exit 1
fi
diff -ru "$sdk/src/generated" "$work/typescript" \
  || { echo "$sdk/src/generated is stale: run 'npm run generate' in $sdk" >&2; exit 1; }
python3 - "$work/operation_ids" "$sdk/src/generated/sdk.gen.ts" <<'EOF'
import re, sys
ids = open(sys.argv[1]).read().split()
expected = {re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), i) for i in ids}
functions = set(re.findall(r"^export const (\w+) =", open(sys.argv[2]).read(), re.M))
for name in sorted(expected - functions):
    print(f"operation {name} is not a function of the TypeScript SDK", file=sys.stderr)
for name in sorted(functions - expected):
    print(f"the TypeScript SDK has a function {name} that is no operationId (renamed?)", file=sys.stderr)
sys.exit(1 if expected != functions else 0)
EOF
echo "$(wc -l <"$work/operation_ids") operations, each a function under its own name"

echo "== tsc --noEmit"
(cd "$sdk" && npx --no-install tsc --noEmit -p .)

echo "== the wrapper's tests"
(cd "$sdk" && npm test --silent >"$work/node-test.log" 2>&1) \
  || { cat "$work/node-test.log" >&2; exit 1; }
grep -E "^# (pass|fail)" "$work/node-test.log"
