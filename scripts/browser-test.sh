#!/usr/bin/env bash
# The dashboard in a real headless Chromium (Debian's chromium, driven by playwright-core):
# every view renders the seeded data, rotate and revoke (each confirmed) take effect through
# the API, a viewer gets a read-only dashboard. With a path, the overview's screenshot goes
# there (docs/dashboard.png is made so); CI runs it without one.
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
# Something to look at: expiries spread over the week (two inside the warning window),
# one beyond it, an account whose only token was revoked, a revoked account.
sa() { "$BIN" sa create --json "$@" | jq -r .identity_id; }
sa --name sensor:core.timer --scope sensor --trigger-type core.timer > /dev/null
sa --name sensor:github.poll --scope sensor --trigger-type github.push --ttl-hours 30 > /dev/null
sa --name sensor:kafka --scope sensor --trigger-type kafka.message --ttl-hours 50 > /dev/null
sa --name sensor:disk --scope sensor --trigger-type core.disk --ttl-hours 24 > /dev/null
sa --name exec:4711 --scope execution --execution-id 4711 --ttl-minutes 45 > /dev/null
sa --name exec:4712 --scope execution --execution-id 4712 --ttl-minutes 20 > /dev/null
sa --name webhook:github --scope webhook --allowed-path /webhooks/github > /dev/null
sa --name cli:alice --scope cli --ttl-days 7 > /dev/null
sa --name cli:bob --scope cli --ttl-days 14 > /dev/null
leaked=$(sa --name sensor:leaked --scope sensor --trigger-type core.timer)
"$BIN" revoke --identity-id "$leaked" --reason "token leaked" > /dev/null
retired=$(sa --name sensor:retired --scope sensor --trigger-type core.timer)
"$BIN" sa revoke "$retired" --reason "sensor retired" > /dev/null
# People, and a signing key rotation (so Keys shows active, retiring and next).
printf '%s\n' 'correct horse battery' | "$BIN" user add carol --role admin --password-stdin > /dev/null
printf '%s\n' 'correct horse battery' | "$BIN" user add dave --role viewer --password-stdin > /dev/null
# The next key is published at start; it may sign once clients had a second to fetch it.
# A rotation waits until the next key has been published for a JWKS cache lifetime (1 s
# here); the publication time is kept to the second, so try for a few seconds.
rotated=""
for _ in $(seq 1 10); do
  sleep 0.5
  TOKEND_JWKS_MAX_AGE=1s "$BIN" keys rotate > /dev/null 2>&1 && { rotated=1; break; }
done
[ -n "$rotated" ] || TOKEND_JWKS_MAX_AGE=1s "$BIN" keys rotate > /dev/null

screenshot=${1:+$(realpath -m "$1")}
(cd tests/browser && node dashboard.mjs "$TOKEND_URL" "$TOKEND_TOKEN" ${screenshot:+"$screenshot"})
