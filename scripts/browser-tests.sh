#!/usr/bin/env bash
# Browser tests of the reference portal (examples/portal): Playwright drives Debian's
# Chromium through every portal action against a real `tenure serve` (its own database)
# while `vite preview` serves the portal from another origin. See examples/portal/README.md.
#
# Installs what is missing: Chromium with apt (Playwright's own browser download cannot
# work on these machines), the npm packages with `npm ci`. Expects target/debug/tenure, or
# $CARGO_TARGET_DIR/debug/tenure (built by .ci/run's OpenAPI step; `cargo build -p
# tenure-server` otherwise), or the binary TENURE_BIN names.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing Debian's chromium"
  if [[ "$(id -u)" == 0 ]]; then apt-get install -y -q chromium >/dev/null; else sudo apt-get install -y -q chromium >/dev/null; fi
fi
export CHROMIUM_PATH="${CHROMIUM_PATH:-$(command -v chromium)}"
# The server the tests start: TENURE_BIN, else the debug build in CARGO_TARGET_DIR (or target/).
export TENURE_BIN="${TENURE_BIN:-$(realpath -m "${CARGO_TARGET_DIR:-target}")/debug/tenure}"
[[ -x "$TENURE_BIN" ]] || cargo build -p tenure-server --locked -q

cd examples/portal
if [[ ! -d node_modules || package-lock.json -nt node_modules ]]; then
  npm ci --no-audit --no-fund --silent
fi
echo "== tsc --noEmit (the portal and its tests)"
npx --no-install tsc --noEmit
echo "== playwright"
npx --no-install playwright test "$@"
