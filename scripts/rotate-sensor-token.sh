#!/usr/bin/env bash
# Rotate a sensor's token with no downtime:
#   1. create a new sensor account with the same name and trigger types,
#   2. write its token atomically to the --out file (mode 0600),
#   3. check the new token with /auth/whoami,
#   4. revoke the old account(s) with reason "Token rotation".
# On any failure the old token stays valid and in place, and the script exits non-zero.
#
#   TOKEND_URL=http://127.0.0.1:8080 TOKEND_TOKEN=$ADMIN_TOKEN \
#     scripts/rotate-sensor-token.sh sensor:core.timer --out /etc/attune/sensor.token [--ttl-hours 72]
set -euo pipefail

usage() {
  echo "usage: $0 NAME --out FILE [--ttl-hours H]" >&2
  exit 2
}

[ $# -ge 1 ] || usage
NAME=$1
shift
OUT=""
TTL_HOURS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=${2:-}; shift 2 ;;
    --ttl-hours) TTL_HOURS=${2:-}; shift 2 ;;
    *) usage ;;
  esac
done
[ -n "$OUT" ] || usage
: "${TOKEND_URL:=http://127.0.0.1:8080}"
TOKEN=${TOKEND_TOKEN:-${ADMIN_TOKEN:-}}
[ -n "$TOKEN" ] || { echo "rotate: set TOKEND_TOKEN (or ADMIN_TOKEN) to an admin token" >&2; exit 2; }
AUTH="Authorization: Bearer $TOKEN"

api() { # METHOD PATH [JSON]: the response body, or a message and non-zero
  local method=$1 path=$2 body=${3:-} response status
  if [ -n "$body" ]; then
    response=$(curl -sS -X "$method" "$TOKEND_URL$path" -H "$AUTH" -H 'Content-Type: application/json' \
      -d "$body" -w '\n%{http_code}') || return 1
  else
    response=$(curl -sS -X "$method" "$TOKEND_URL$path" -H "$AUTH" -w '\n%{http_code}') || return 1
  fi
  status=${response##*$'\n'}
  response=${response%$'\n'*}
  if [ "${status:0:1}" != "2" ]; then
    echo "rotate: $method $path answered $status: $(jq -r '.error.message // .' <<<"$response" 2>/dev/null)" >&2
    return 1
  fi
  printf '%s\n' "$response"
}

name_q=$(jq -rn --arg n "$NAME" '$n | @uri')
old=$(api GET "/service-accounts?scope=sensor&status=active&name=$name_q&limit=1000")
count=$(jq '.data | length' <<<"$old")
[ "$count" -ge 1 ] || { echo "rotate: no active sensor account named $NAME" >&2; exit 1; }
newest=$(jq '.data | max_by(.identity_id)' <<<"$old")
request=$(jq -c --argjson ttl "${TTL_HOURS:-null}" \
  '{name, scope, description, metadata: {trigger_types: .metadata.trigger_types}}
   + (if $ttl == null then {} else {ttl_hours: $ttl} end)' <<<"$newest")
created=$(api POST /service-accounts "$request")
new_token=$(jq -r .token <<<"$created")
new_id=$(jq -r .identity_id <<<"$created")

# Write the new token next to the old one, then swap it in atomically.
dir=$(dirname -- "$OUT")
tmp=$(mktemp "$dir/.$(basename -- "$OUT").XXXXXX")
trap 'rm -f "$tmp"' EXIT
chmod 600 "$tmp"
printf '%s\n' "$new_token" > "$tmp"

# The new token must work before anything old goes away.
me=$(curl -sS -f "$TOKEND_URL/auth/whoami" -H "Authorization: Bearer $new_token") || {
  echo "rotate: the new token does not verify; the old token stays in place" >&2
  api DELETE "/service-accounts/$new_id" '{"reason": "Rotation failed"}' > /dev/null || true
  exit 1
}
[ "$(jq -r .identity_id <<<"$me")" = "$new_id" ] || { echo "rotate: whoami disagrees" >&2; exit 1; }
mv -f -- "$tmp" "$OUT"
trap - EXIT

for id in $(jq -r '.data[].identity_id' <<<"$old"); do
  api DELETE "/service-accounts/$id" '{"reason": "Token rotation"}' > /dev/null
  echo "revoked old account $id"
done
echo "rotated $NAME: new account $new_id, token written to $OUT, expires $(jq -r .expires_at <<<"$created")"
