#!/usr/bin/env bash
# The crates' dependencies point one way (server -> api -> app -> store -> domain, and
# engine -> app): the compiler keeps each room to its job only while no crate depends on
# what its room must not know. Fails, naming the pair, when one does.
set -euo pipefail
cd "$(dirname "$0")/.."

forbidden=(
  "tenure-domain diesel"
  "tenure-domain diesel-async"
  "tenure-domain actix-web"
  "tenure-domain tokio"
  "tenure-store actix-web"
  "tenure-store reqwest"
  "tenure-test-support actix-web"
  "tenure-app actix-web"
  "tenure-app reqwest"
  "tenure-engine actix-web"
  "tenure-api reqwest"
  "tenure-api tenure-engine"
)
failed=0
for pair in "${forbidden[@]}"; do
  read -r crate dependency <<<"$pair"
  # Every package in the crate's normal and build graph, one per line; a failure here
  # (an unknown crate, a stale lock file) stops the check instead of passing it.
  graph=$(cargo tree -p "$crate" -e normal,build --prefix none --locked)
  if grep -q "^$dependency v" <<<"$graph"; then
    echo "layering: $crate depends on $dependency:" >&2
    cargo tree -p "$crate" -e normal,build -i "$dependency" --locked 2>&1 | head -5 >&2
    failed=1
  fi
done
[ "$failed" = 0 ] && echo "layering: every crate keeps to its room"
exit "$failed"
