#!/usr/bin/env bash
# Hours left on a token, read from the token itself (no server needed): the token comes from
# ATTUNE_API_TOKEN or TOKEND_TOKEN. Warns under WARN_HOURS (default 6).
# Exit 0 fine, 1 expires within the window or has expired, 2 no token or not readable.
set -euo pipefail

WARN_HOURS=${WARN_HOURS:-6}
TOKEN=${ATTUNE_API_TOKEN:-${TOKEND_TOKEN:-}}
[ -n "$TOKEN" ] || { echo "check-token: set ATTUNE_API_TOKEN or TOKEND_TOKEN" >&2; exit 2; }

# tokend writes the payload so that plain base64 -d decodes it.
exp=$(echo "$TOKEN" | cut -d'.' -f2 | base64 -d 2>/dev/null | jq -r '.exp' 2>/dev/null) || true
case "$exp" in
  '' | null | *[!0-9]*) echo "check-token: cannot read the token's expiry" >&2; exit 2 ;;
esac
now=$(date -u +%s)
left=$((exp - now))
hours=$(awk -v s="$left" 'BEGIN { printf "%.1f", s / 3600 }')
expires=$(date -u -d "@$exp" +%Y-%m-%dT%H:%M:%SZ)
if [ "$left" -le 0 ]; then
  echo "⚠ the token EXPIRED at $expires (${hours#-} h ago)"
  exit 1
elif [ "$left" -le $((WARN_HOURS * 3600)) ]; then
  echo "⚠ the token expires at $expires, in $hours h: refresh or rotate it now"
  exit 1
fi
echo "✓ the token expires at $expires, in $hours h"
