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
  # `cargo tree -i` lists the paths from the crate to the dependency; it fails when the
  # dependency is not in the crate's graph at all.
  if cargo tree -p "$crate" -e normal,build -i "$dependency" --locked >/dev/null 2>&1; then
    echo "layering: $crate depends on $dependency:" >&2
    cargo tree -p "$crate" -e normal,build -i "$dependency" --locked 2>&1 | head -5 >&2
    failed=1
  fi
done
[ "$failed" = 0 ] && echo "layering: every crate keeps to its room"
exit "$failed"
