#!/usr/bin/env bash
# Expiry report of every service account that is not revoked itself, with curl, jq and date.
# Exit 0 when nothing expires within WARN_HOURS (default 6), 1 when something does or already
# has, 2 when the report could not be made.
#
#   TOKEND_URL=http://127.0.0.1:8080 TOKEND_TOKEN=$ADMIN_TOKEN scripts/check-all-tokens.sh [--warn-hours 6]
set -euo pipefail

WARN_HOURS=${WARN_HOURS:-6}
if [ "${1:-}" = "--warn-hours" ]; then WARN_HOURS=${2:?}; fi
: "${TOKEND_URL:=http://127.0.0.1:8080}"
TOKEN=${TOKEND_TOKEN:-${ADMIN_TOKEN:-}}
[ -n "$TOKEN" ] || { echo "check: set TOKEND_TOKEN to an admin or viewer token" >&2; exit 2; }

now=$(date -u +%s)
warn_seconds=$((WARN_HOURS * 3600))
offset=0
warnings=0
checked=0
while :; do
  # status=all: also the accounts whose every token was revoked (nothing of them works);
  # those revoked themselves (revoked_at set) are skipped below.
  page=$(curl -sS -f "$TOKEND_URL/service-accounts?status=all&limit=1000&offset=$offset" \
    -H "Authorization: Bearer $TOKEN") || { echo "check: cannot list accounts at $TOKEND_URL" >&2; exit 2; }
  rows=$(jq -r '.data[] | select(.revoked_at == null)
    | [.identity_id, .name, .scope, (.expires_at // "")] | @tsv' <<<"$page")
  while IFS=$'\t' read -r id name scope expires; do
    [ -n "$id" ] || continue
    checked=$((checked + 1))
    if [ -z "$expires" ]; then
      echo "⚠ $id $name ($scope): no live token (every token was revoked)"
      warnings=$((warnings + 1))
      continue
    fi
    exp=$(date -u -d "$expires" +%s)
    left=$((exp - now))
    hours=$(awk -v s="$left" 'BEGIN { printf "%.1f", s / 3600 }')
    if [ "$left" -le 0 ]; then
      echo "⚠ $id $name ($scope): EXPIRED $expires (${hours#-} h ago)"
      warnings=$((warnings + 1))
    elif [ "$left" -le "$warn_seconds" ]; then
      echo "⚠ $id $name ($scope): expires $expires (in $hours h)"
      warnings=$((warnings + 1))
    else
      echo "✓ $id $name ($scope): expires $expires (in $hours h)"
    fi
  done <<<"$rows"
  total=$(jq .total <<<"$page")
  offset=$((offset + $(jq '.data | length' <<<"$page")))
  [ "$offset" -lt "$total" ] && [ "$(jq '.data | length' <<<"$page")" -gt 0 ] || break
done
echo "$checked account(s) checked, $warnings need attention (warning window $WARN_HOURS h)"
[ "$warnings" -eq 0 ]
