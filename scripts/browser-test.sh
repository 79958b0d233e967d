#!/usr/bin/env bash
# The dashboard in a real headless Chromium (Debian's chromium, driven by playwright-core):
# sign in, create an account, see it listed, revoke it, see it revoked.
#
#   scripts/browser-test.sh [screenshot.png]
#
# Needs node/npm and chromium (apt-get install chromium); .ci/run installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${TOKEND_BIN:-${CARGO_TARGET_DIR:-target}/debug/tokend}
[ -x "$BIN" ] || cargo build --locked
(cd tests/browser && npm ci --no-audit --no-fund --silent)

work=$(mktemp -d)
server=""
# shellcheck disable=SC2329 # called by the EXIT trap
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export TOKEND_DATA_DIR="$work" RUST_LOG=error
"$BIN" serve --listen "127.0.0.1:$port" > "$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/ready" > /dev/null && break; sleep 0.1; done
TOKEND_TOKEN=$("$BIN" admin-token)
export TOKEND_URL="http://127.0.0.1:$port" TOKEND_TOKEN
# Something to look at besides the account the test creates.
"$BIN" sa create --name sensor:core.timer --scope sensor --trigger-type core.timer > /dev/null
"$BIN" sa create --name exec:4711 --scope execution --execution-id 4711 --ttl-minutes 45 > /dev/null
"$BIN" sa create --name webhook:github --scope webhook --allowed-path /webhooks/github > /dev/null
"$BIN" sa create --name cli:alice --scope cli --ttl-days 7 > /dev/null

screenshot=${1:+$(realpath -m "$1")}
(cd tests/browser && node dashboard.mjs "$TOKEND_URL" "$TOKEND_TOKEN" ${screenshot:+"$screenshot"})
