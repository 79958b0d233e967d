#!/usr/bin/env bash
# The README's curl + jq walk-through, as one script: create -> use -> rotate -> revoke ->
# check expiry. Needs a running tokend at $TOKEND_URL and an admin token in $ADMIN_TOKEN:
#
#   export TOKEND_URL=http://127.0.0.1:8080
#   export ADMIN_TOKEN=$(tokend admin-token)   # in the server's directory (it reads ./data)
#   scripts/walkthrough.sh
#
# Exits non-zero as soon as anything is not as the README says. The test suite runs it
# against a live server on SQLite and on PostgreSQL.
set -euo pipefail

: "${TOKEND_URL:?set TOKEND_URL, e.g. http://127.0.0.1:8080}"
: "${ADMIN_TOKEN:?set ADMIN_TOKEN, e.g. export ADMIN_TOKEN=\$(tokend admin-token)}"
AUTH="Authorization: Bearer $ADMIN_TOKEN"
JSON="Content-Type: application/json"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() { echo "walkthrough: $*" >&2; exit 1; }

echo "== 1. create a sensor account (the token is shown once: keep it)"
curl -sf -X POST "$TOKEND_URL/service-accounts" -H "$AUTH" -H "$JSON" \
  -d '{"name": "sensor:core.timer", "scope": "sensor", "ttl_hours": 72,
       "metadata": {"trigger_types": ["core.timer"]}}' > "$work/sensor.json"
OLD_ID=$(jq -r .identity_id "$work/sensor.json")
OLD_TOKEN=$(jq -r .token "$work/sensor.json")
jq '{identity_id, name, scope, token_id, expires_at}' "$work/sensor.json"

echo "== 2. the sensor uses it"
curl -sf "$TOKEND_URL/auth/whoami" -H "Authorization: Bearer $OLD_TOKEN" \
  | jq '{identity_id, name, scope, expires_in_seconds}'

echo "== 3. rotate: a new account with the same name and trigger types"
TRIGGERS=$(jq -c .metadata.trigger_types "$work/sensor.json")
curl -sf -X POST "$TOKEND_URL/service-accounts" -H "$AUTH" -H "$JSON" \
  -d "{\"name\": \"sensor:core.timer\", \"scope\": \"sensor\", \"ttl_hours\": 72,
       \"metadata\": {\"trigger_types\": $TRIGGERS}}" > "$work/new.json"
NEW_TOKEN=$(jq -r .token "$work/new.json")
curl -sf "$TOKEND_URL/auth/whoami" -H "Authorization: Bearer $NEW_TOKEN" > /dev/null \
  || fail "the new token does not work"

echo "== 4. revoke the old account"
curl -sf -X DELETE "$TOKEND_URL/service-accounts/$OLD_ID" -H "$AUTH" -H "$JSON" \
  -d '{"reason": "Token rotation"}' | jq .
code=$(curl -s "$TOKEND_URL/auth/whoami" -H "Authorization: Bearer $OLD_TOKEN" | jq -r .error.code)
[ "$code" = "token_revoked" ] || fail "the old token should be refused as token_revoked, got $code"
echo "old token: $code"

echo "== 5. check expiry: what expires within 80 hours, and every sensor account"
curl -sf "$TOKEND_URL/service-accounts?expiring_within_hours=80" -H "$AUTH" \
  | jq -r '.data[] | "\(.identity_id)\t\(.name)\t\(.status)\t\(.expires_at)"'
curl -sf "$TOKEND_URL/service-accounts?scope=sensor&status=all" -H "$AUTH" \
  | jq -r '.data[] | "\(.identity_id)\t\(.name)\t\(.status)\t\(.revocation_reason // "-")"'
active=$(curl -sf "$TOKEND_URL/service-accounts?scope=sensor&name=sensor:core.timer" -H "$AUTH" | jq .total)
[ "$active" = "1" ] || fail "expected exactly one active sensor:core.timer account, got $active"

echo "== 6. hours left on a token, from the token itself"
exp=$(curl -sf "$TOKEND_URL/auth/whoami" -H "Authorization: Bearer $NEW_TOKEN" | jq -r .expires_in_seconds)
echo "new token: $(( exp / 3600 )) hours left"
echo "walkthrough: ok"
