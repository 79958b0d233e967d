#!/usr/bin/env bash
# Fuzz the API from the committed spec (openapi/openapi.json) with schemathesis against a
# live tokend on a throwaway SQLite database, authenticated as an admin. Fails on any server
# error, any response that violates the spec, or any crash.
#
#   scripts/schemathesis.sh                 # builds tokend (debug) if needed
#   TOKEND_BIN=target/release/tokend scripts/schemathesis.sh
#   SCHEMATHESIS_MAX_EXAMPLES=200 scripts/schemathesis.sh   # a longer run
#
# Needs python3 (venv) and PyPI; schemathesis is installed into target/schemathesis-venv.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
VENV=${SCHEMATHESIS_VENV:-target/schemathesis-venv}
BIN=${TOKEND_BIN:-${CARGO_TARGET_DIR:-target}/debug/tokend}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-50}

if [ ! -x "$VENV/bin/st" ] || ! "$VENV/bin/st" --version | grep -q "$SCHEMATHESIS_VERSION"; then
  # --clear: a venv copied or moved with target/ has stale paths in its scripts.
  python3 -m venv --clear "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
if [ ! -x "$BIN" ]; then
  cargo build --locked
fi

work=$(mktemp -d)
server=""
# shellcheck disable=SC2329 # called by the EXIT trap
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export TOKEND_DATA_DIR="$work" RUST_LOG=${RUST_LOG:-error}
# Cheap password hashing: the hook logs in for every request.
export TOKEND_ARGON2_MEMORY_KIB=1024 TOKEND_ARGON2_ITERATIONS=1
"$BIN" serve --listen "127.0.0.1:$port" > "$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/ready" > /dev/null && break
  sleep 0.1
done

export TOKEND_FUZZ_URL="http://127.0.0.1:$port"
export TOKEND_FUZZ_LOGIN=fuzz-admin
TOKEND_FUZZ_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
export TOKEND_FUZZ_PASSWORD
printf '%s\n' "$TOKEND_FUZZ_PASSWORD" | "$BIN" user add "$TOKEND_FUZZ_LOGIN" --role admin --password-stdin > /dev/null

# One worker: CPython 3.11 keeps the AST constructor's recursion depth per interpreter, so two
# threads parsing at once (Hypothesis parses lambdas to describe strategies) can fail with
# "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905), a crash of
# the tool rather than a finding about tokend.
# use_after_free is left out on purpose: DELETE /service-accounts/{id} revokes an account,
# it does not erase it, so GET afterwards answers 200 with "status": "revoked".
status=0
PYTHONPATH=scripts SCHEMATHESIS_HOOKS=schemathesis_hooks "$VENV/bin/st" \
  --config-file scripts/schemathesis.toml run openapi/openapi.json \
  --url "$TOKEND_FUZZ_URL" \
  --checks all --exclude-checks use_after_free \
  --max-examples "$MAX_EXAMPLES" \
  --workers 1 \
  --suppress-health-check all \
  --request-timeout 30 \
  --seed "${SCHEMATHESIS_SEED:-$RANDOM}" \
  "$@" || status=$?

if grep -q "panicked" "$work/server.log"; then
  echo "schemathesis.sh: the server panicked:" >&2
  grep -A5 "panicked" "$work/server.log" >&2
  status=1
fi
if ! kill -0 "$server" 2>/dev/null; then
  echo "schemathesis.sh: the server died during the run" >&2
  status=1
fi
exit "$status"
