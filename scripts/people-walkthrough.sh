#!/usr/bin/env bash
# The people walk-through (docs/people.md): log in, manage with the cli token, refresh, log out,
# read the audit trail. Needs a running tokend at $TOKEND_URL and a user:
#
#   tokend user add alice --role admin   # in the server's directory (it reads ./data)
#   TOKEND_URL=http://127.0.0.1:8080 LOGIN=alice PASSWORD=... scripts/people-walkthrough.sh
#
# Exits non-zero as soon as anything is not as docs/people.md says.
set -euo pipefail

: "${TOKEND_URL:?set TOKEND_URL, e.g. http://127.0.0.1:8080}"
: "${LOGIN:?set LOGIN}"
: "${PASSWORD:?set PASSWORD}"
JSON="Content-Type: application/json"
fail() { echo "people-walkthrough: $*" >&2; exit 1; }

echo "== log in"
login=$(jq -n --arg l "$LOGIN" --arg p "$PASSWORD" '{login: $l, password: $p}')
reply=$(curl -sf -X POST "$TOKEND_URL/auth/login" -H "$JSON" -d "$login") || fail "login refused"
TOKEN=$(jq -r .token <<<"$reply")
jq '{login, role, expires_at}' <<<"$reply"

echo "== manage with the cli token"
total=$(curl -sf "$TOKEND_URL/service-accounts?scope=sensor" -H "Authorization: Bearer $TOKEN" | jq .total)
echo "sensor accounts: $total"

echo "== refresh, revoking the old token"
OLD=$TOKEN
TOKEN=$(curl -sf -X POST "$TOKEND_URL/auth/refresh" -H "Authorization: Bearer $TOKEN" \
  -H "$JSON" -d '{"revoke_current": true}' | jq -r .token)
code=$(curl -s "$TOKEND_URL/auth/whoami" -H "Authorization: Bearer $OLD" | jq -r .error.code)
[ "$code" = "token_revoked" ] || fail "the refreshed-away token should be revoked, got $code"

echo "== the audit trail of this login"
me=$(curl -sf "$TOKEND_URL/auth/whoami" -H "Authorization: Bearer $TOKEN" | jq -r .identity_id)
curl -sf "$TOKEND_URL/audit?identity_id=$me" -H "Authorization: Bearer $TOKEN" \
  | jq -r '.data | reverse | .[] | "\(.occurred_at)  actor=\(.actor_id // "-")  \(.action)  \(.reason // "")"'

echo "== log out"
curl -sf -X POST "$TOKEND_URL/auth/logout" -H "Authorization: Bearer $TOKEN" | jq -r .message
code=$(curl -s "$TOKEND_URL/auth/whoami" -H "Authorization: Bearer $TOKEN" | jq -r .error.code)
[ "$code" = "token_revoked" ] || fail "the logged-out token should be revoked, got $code"
echo "people-walkthrough: ok"
