#!/usr/bin/env bash
# The benchmark harness: one command, one run, every figure side by side.
#
#   bench/run.sh            # everything (about 17 minutes on 2 cores)
#   BENCH_SKIP=scale,cleanup bench/run.sh
#   BENCH_BUILD=/tmp/old bench/run.sh   # another build's tokend and tokend-bench, not built here
#
# Every server listens on 127.0.0.1 and is stopped at the end. Load: wrk, BENCH_CONNECTIONS
# connections (32), BENCH_DURATION (10s) per run, the same for every target. Results:
# bench/results/<timestamp>/results.json and a table on stdout (bench/report.py).
#
# Servers and load generator do not share cores: every server (tokend, the empty handler,
# OpenBao, the raw crypto loop) runs on BENCH_SERVER_CPUS (default: cpu 1) with one worker
# per cpu, wrk on BENCH_CLIENT_CPUS (default: cpu 0) with one thread per cpu. On a machine
# with fewer than two cpus nothing is pinned.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
ROUNDS=${BENCH_ROUNDS:-3}
# shellcheck source=bench/lib.sh
source bench/lib.sh
PG_ADMIN_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
SKIP=",${BENCH_SKIP:-},"
OUT="$ROOT/bench/results/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
WORK=$(mktemp -d)
PIDS=()
PG_DBS=()

log() { printf '\n== %s\n' "$*" >&2; }
skip() { [[ "$SKIP" == *",$1,"* ]]; }

# shellcheck disable=SC2329 # called by the EXIT trap
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for db in "${PG_DBS[@]}"; do psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { echo "bench: needs $1 ($2)" >&2; exit 2; }; }
need wrk "apt-get install wrk"
need curl "apt-get install curl"
need jq "apt-get install jq"
need python3 "python3"

if [ -n "${BENCH_BUILD:-}" ]; then
  TOKEND=$BENCH_BUILD/tokend
  BENCH=$BENCH_BUILD/tokend-bench
  if [ ! -x "$TOKEND" ] || [ ! -x "$BENCH" ]; then
    echo "bench: BENCH_BUILD=$BENCH_BUILD lacks tokend or tokend-bench" >&2
    exit 2
  fi
  log "measuring the build in $BENCH_BUILD"
else
  log "building (release)"
  cargo build --release --locked --bins 2>&1 | tail -1 >&2
  TOKEND=$ROOT/target/release/tokend
  BENCH=$ROOT/target/release/tokend-bench
fi

wait_ready() { # URL
  for _ in $(seq 1 300); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "bench: $1 did not become ready" >&2; return 1
}

half() { # 10s -> 5s (wrk durations in whole seconds)
  local n=${1%s}
  echo "$(( n / 2 > 0 ? n / 2 : 1 ))s"
}

# wrk NAME URL [ENV=VALUE...]: one run; the JSON summary goes to $OUT/NAME.json.
load() {
  local name=$1 url=$2
  shift 2
  env BENCH_RESULT="$OUT/$name.json" BENCH_THREADS="$WRK_THREADS" "$@" \
    "${ON_CLIENT[@]}" wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 10s -s bench/wrk/bench.lua "$url" \
    > "$OUT/$name.wrk.txt" 2>&1 || { cat "$OUT/$name.wrk.txt" >&2; return 1; }
  echo "  $name: $(cat "$OUT/$name.json")" >&2
}

# start_tokend DIR PORT [ENV=VALUE...]: a tokend in the background; sets TOKEND_PID.
start_tokend() {
  local dir=$1 port=$2
  shift 2
  env TOKEND_DATA_DIR="$dir" RUST_LOG=warn TOKEND_WORKERS="$WORKERS" "$@" \
    "${ON_SERVER[@]}" "$TOKEND" serve --listen "127.0.0.1:$port" > "$dir.log" 2>&1 &
  TOKEND_PID=$!
  PIDS+=("$TOKEND_PID")
  wait_ready "http://127.0.0.1:$port/ready"
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

new_pg_db() { # prints a database URL
  local db
  db="tokend_bench_$(date +%s%N | tail -c 9)_$RANDOM"
  psql -q "$PG_ADMIN_URL" -c "CREATE DATABASE $db" >/dev/null
  PG_DBS+=("$db")
  echo "${PG_ADMIN_URL%/*}/$db"
}

echo "{}" > "$OUT/meta.json"
jq -n --arg d "$DURATION" --argjson c "$CONNECTIONS" --argjson t "$WRK_THREADS" --argjson w "$WORKERS" \
  --arg cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" --argjson cores "$(nproc)" \
  --argjson rounds "$ROUNDS" --arg server_cpus "$SERVER_CPUS" --arg client_cpus "$CLIENT_CPUS" --arg commit "$(git rev-parse --short HEAD 2>/dev/null || echo -)" \
  '{duration: $d, connections: $c, wrk_threads: $t, server_workers: $w, cpu: $cpu, cores: $cores,
    rounds: $rounds, server_cpus: $server_cpus, client_cpus: $client_cpus, commit: $commit}' > "$OUT/meta.json"

# ---------------------------------------------------------------------------------------------
log "the crypto primitives alone (ed25519-dalek, hmac, tokend's verify without HTTP) on the server's cpus"
"${ON_SERVER[@]}" "$BENCH" crypto --threads "$WORKERS" --seconds 3 > "$OUT/crypto.json"
cat "$OUT/crypto.json" >&2

# The HTTP ceiling: an empty actix-web handler, sent exactly the requests a verify run sends
# (the same Authorization headers), so the ratio is about the work, not the request size.
empty_run() { # NAME TOKENS
  local port pid
  port=$(free_port)
  "${ON_SERVER[@]}" "$BENCH" empty-server --listen "127.0.0.1:$port" --workers "$WORKERS" &
  pid=$!
  PIDS+=("$pid")
  wait_ready "http://127.0.0.1:$port/"
  load "$1" "http://127.0.0.1:$port/auth/verify" BENCH_HEADER=Authorization BENCH_HEADER_PREFIX="Bearer " BENCH_TOKENS="$2"
  stop "$pid"
}

# ---------------------------------------------------------------------------------------------
run_tokend_suite() { # LABEL DATABASE_URL(or empty) ALG
  local label=$1 db=$2 alg=$3
  local dir="$WORK/$label" port
  mkdir -p "$dir"
  port=$(free_port)
  local extra=(TOKEND_JWT_ALG="$alg")
  [ "$alg" = HS256 ] && extra+=(TOKEND_JWT_SECRET="a benchmark secret of at least thirty-two bytes")
  [ -n "$db" ] && extra+=(TOKEND_DATABASE_URL="$db")
  start_tokend "$dir" "$port" "${extra[@]}"
  local pid=$TOKEND_PID url="http://127.0.0.1:$port"
  local admin
  admin=$(env TOKEND_DATA_DIR="$dir" "${extra[@]}" "$TOKEND" admin-token --ttl-hours 24)
  if [ "$label" != pg ]; then
    env TOKEND_DATA_DIR="$dir" "${extra[@]}" "$BENCH" mint --count 1000 > "$dir/warm.tokens"
    # Rounds, alternating with the empty handler: this machine's speed drifts by ±10 % from
    # minute to minute, so ratios are taken between neighbouring runs (report.py: medians).
    for round in $(seq 1 "$ROUNDS"); do
      empty_run "empty_$label.r$round" "$dir/warm.tokens"
      load "verify_warm_$label.r$round" "$url/auth/verify" BENCH_HEADER=Authorization BENCH_HEADER_PREFIX="Bearer " BENCH_TOKENS="$dir/warm.tokens"
      load "whoami_warm_$label.r$round" "$url/auth/whoami" BENCH_HEADER=Authorization BENCH_HEADER_PREFIX="Bearer " BENCH_TOKENS="$dir/warm.tokens"
    done
    # Enough new tokens that none is sent twice in one run (a repeat is a warm hit, and
    # report.py refuses a run whose tokens ran out): HS256 verifies about three times faster.
    local cold_tokens=400000
    [ "$alg" = HS256 ] && cold_tokens=1000000
    env TOKEND_DATA_DIR="$dir" "${extra[@]}" "$BENCH" mint --count "${BENCH_COLD_TOKENS:-$cold_tokens}" > "$dir/cold.tokens"
    load "verify_cold_$label" "$url/auth/verify" BENCH_HEADER=Authorization BENCH_HEADER_PREFIX="Bearer " BENCH_TOKENS="$dir/cold.tokens" BENCH_ONCE=1
    # A flood of bad tokens must cost no more than cold valid ones: the same tokens with
    # their signature broken (ten characters before the end replaced), each sent once.
    sed 's/.\{10\}\(.\)$/AAAAAAAAAA\1/' "$dir/cold.tokens" > "$dir/badsig.tokens"
    load "verify_badsig_$label" "$url/auth/verify" BENCH_HEADER=Authorization BENCH_HEADER_PREFIX="Bearer " BENCH_TOKENS="$dir/badsig.tokens" BENCH_ONCE=1
  fi
  if [ "$alg" = EdDSA ]; then
    load "issue_$label" "$url/service-accounts" BENCH_METHOD=POST BENCH_FIXED_HEADER="Authorization: Bearer $admin" \
      BENCH_BODY='{"name":"bench:issue","scope":"execution","metadata":{"execution_id":1}}' \
      BENCH_CAPTURE=identity_id BENCH_CAPTURE_FILE="$dir/ids"
    cat "$dir"/ids.* > "$dir/ids.all"
    # Revoking is faster than issuing on SQLite, and an id revoked twice is a cheap no-op:
    # revoke for half as long as the ids were made (report.py refuses a run that ran out).
    DURATION=${BENCH_REVOKE_DURATION:-$(half "$DURATION")} load "revoke_$label" "$url/" BENCH_PATH="/service-accounts/{}" BENCH_METHOD=DELETE BENCH_FIXED_HEADER="Authorization: Bearer $admin" \
      BENCH_IDS="$dir/ids.all" BENCH_ONCE=1
    if ! skip oauth; then
      # OAuth 2.0 client_credentials with client_secret_basic: a sensor account's client.
      local account secret basic
      account=$(curl -sf -X POST "$url/service-accounts" -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
        -d '{"name":"bench:oauth","scope":"sensor","metadata":{"trigger_types":["bench"]}}' | jq -r .identity_id)
      secret=$(curl -sf -X POST "$url/service-accounts/$account/client-secrets" -H "Authorization: Bearer $admin" | jq -r .client_secret)
      basic=$(printf 'sa-%s:%s' "$account" "$secret" | base64 -w0)
      load "oauth_cc_$label" "$url/oauth2/token" BENCH_METHOD=POST BENCH_FIXED_HEADER="Authorization: Basic $basic" \
        BENCH_BODY='grant_type=client_credentials' BENCH_CONTENT_TYPE=application/x-www-form-urlencoded
      # Workload federation: Kubernetes-shaped tokens of a trusted issuer (inline JWKS, so the
      # key is warm), each used once, for 100 workload accounts.
      "$BENCH" mint-external --count "${BENCH_EXTERNAL_TOKENS:-60000}" --issuer https://k8s.bench.example \
        --jwks-out "$dir/external.jwks" > "$dir/external.tokens"
      jq -n --slurpfile jwks "$dir/external.jwks" '{issuer: "https://k8s.bench.example", jwks: $jwks[0],
        audiences: ["tokend"], rules: [{match: {"kubernetes.io.namespace": "bench"}, scope: "sensor",
        name: "sensor:{kubernetes.io.serviceaccount.name}", metadata: {trigger_types: ["bench"]}}]}' \
        | curl -sf -X POST "$url/federation/issuers" -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' -d @- > /dev/null
      load "oauth_jwt_bearer_$label" "$url/oauth2/token" BENCH_METHOD=POST BENCH_TOKENS="$dir/external.tokens" BENCH_ONCE=1 \
        BENCH_BODY_TOKENS=1 BENCH_BODY='grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion={token}' \
        BENCH_CONTENT_TYPE=application/x-www-form-urlencoded
    fi
  fi
  rss_kib "$pid" > "$OUT/rss_after_$label.kib"
  stop "$pid"
}

log "tokend on SQLite, EdDSA"
run_tokend_suite sqlite "" EdDSA
log "tokend on SQLite, HS256"
run_tokend_suite sqlite_hs256 "" HS256
if ! skip pg; then
  log "tokend on PostgreSQL, EdDSA"
  run_tokend_suite pg "$(new_pg_db)" EdDSA
fi

# ---------------------------------------------------------------------------------------------
if ! skip openbao; then
  log "OpenBao (raft storage in a temporary directory)"
  bench/openbao.sh "$WORK/openbao" "$OUT" "$DURATION" "$CONNECTIONS" "$WRK_THREADS"
fi

# ---------------------------------------------------------------------------------------------
if ! skip cleanup; then
  bench/cleanup.sh "$WORK/cleanup" "$OUT" "$PG_ADMIN_URL"
fi
if ! skip scale; then
  bench/scale.sh "$WORK/scale" "$OUT" "$PG_ADMIN_URL"
fi
if ! skip startup; then
  bench/startup.sh "$WORK/startup" "$OUT"
fi
if ! skip login_flood; then
  BENCH_DURATION="$DURATION" bench/login_flood.sh "$WORK/login_flood" "$OUT"
fi

python3 bench/report.py "$OUT"
