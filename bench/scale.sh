#!/usr/bin/env bash
# Scale-out: three tokend replicas on one PostgreSQL database.
# - a revocation through any replica is refused by all others within 50 ms at p99: 1,000
#   revocations, each through a random replica, timed from its 200 until both others refuse
#   (p50, p99, max), with push (LISTEN/NOTIFY, the default) and then again with three fresh
#   replicas on the poll alone (TOKEND_DATABASE_LISTEN_URL=off);
# - the scheduled cleanup runs on exactly one replica per interval (2 s here, for 12 s);
# - signing keys are generated once and shared (identical JWKS);
# - verify load spread across the three.
#
#   bench/scale.sh WORKDIR OUTDIR PG_ADMIN_URL
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1 out=$2 pg_admin=$3
mkdir -p "$dir"
# shellcheck source=bench/lib.sh
source bench/lib.sh
TOKEND=$PWD/target/release/tokend
BENCH=$PWD/target/release/tokend-bench
db="tokend_bench_scale_$RANDOM"
psql -q "$pg_admin" -c "CREATE DATABASE $db" >/dev/null
url="${pg_admin%/*}/$db"
kek=$(python3 -c 'import os, base64; print(base64.b64encode(os.urandom(32)).decode())')
pids=()
# shellcheck disable=SC2329 # called by the EXIT trap
finish() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap finish EXIT

# start_replicas PHASE [VAR=VALUE...]: three replicas on the database with that extra
# environment, ready; sets replicas (their URLs) and adds to pids.
start_replicas() {
  local phase=$1 i port r
  shift
  replicas=()
  for i in 1 2 3; do
    port=$(free_port)
    mkdir -p "$dir/r$i"
    env TOKEND_DATABASE_URL="$url" TOKEND_KEY_ENCRYPTION_KEY="$kek" TOKEND_DATA_DIR="$dir/r$i" \
      TOKEND_CLEANUP_INTERVAL=2s TOKEND_WORKERS=1 RUST_LOG=warn "$@" \
      "$TOKEND" serve --listen "127.0.0.1:$port" > "$dir/r$i.$phase.log" 2>&1 &
    pids+=("$!")
    replicas+=("http://127.0.0.1:$port")
  done
  for r in "${replicas[@]}"; do
    for _ in $(seq 1 300); do curl -sf "$r/ready" >/dev/null && break; sleep 0.05; done
  done
}

# propagation NAME: 1,000 revocations through random replicas -> $out/NAME.json, with each
# replica's tokend_revocation_push_active at the end.
propagation() {
  local name=$1 r args=() push=()
  for r in "${replicas[@]}"; do args+=(--replica "$r"); done
  "$BENCH" propagation "${args[@]}" --admin-token "$admin" --rounds "${BENCH_PROPAGATION_ROUNDS:-1000}" > "$dir/$name.json"
  for r in "${replicas[@]}"; do
    push+=("$(curl -sf "$r/metrics" | awk '$1 == "tokend_revocation_push_active" {print $2}')")
  done
  jq --arg push "${push[*]}" '. + {push_active: ($push | split(" ") | map(tonumber? // null))}' "$dir/$name.json" > "$out/$name.json"
  echo "  $name: $(cat "$out/$name.json")" >&2
}

echo "== three replicas on one PostgreSQL" >&2
start_replicas push
started=$(date +%s)
admin=$(env TOKEND_DATABASE_URL="$url" TOKEND_KEY_ENCRYPTION_KEY="$kek" TOKEND_DATA_DIR="$dir/r1" "$TOKEND" admin-token)

# Keys: generated once, the same everywhere.
jwks=()
for r in "${replicas[@]}"; do jwks+=("$(curl -sf "$r/.well-known/jwks.json" | jq -c '[.keys[].kid] | sort')"); done
keys_rows=$(psql -qtA "$url" -c "SELECT count(*) FROM signing_key")
same_keys=false
[ "${jwks[0]}" = "${jwks[1]}" ] && [ "${jwks[1]}" = "${jwks[2]}" ] && same_keys=true

# Verify load spread across the replicas (one wrk per replica, at once).
env TOKEND_DATABASE_URL="$url" TOKEND_KEY_ENCRYPTION_KEY="$kek" TOKEND_DATA_DIR="$dir/r1" "$BENCH" mint --count 1000 > "$dir/warm.tokens"
wrks=()
for i in 0 1 2; do
  env BENCH_RESULT="$out/scale_verify_r$i.json" BENCH_THREADS=1 BENCH_HEADER=Authorization BENCH_HEADER_PREFIX="Bearer " \
    BENCH_TOKENS="$dir/warm.tokens" wrk -t1 -c11 -d"${BENCH_DURATION:-10s}" -s bench/wrk/bench.lua \
    "${replicas[$i]}/auth/verify" > "$out/scale_verify_r$i.wrk.txt" 2>&1 &
  wrks+=("$!")
done
for w in "${wrks[@]}"; do wait "$w"; done

# Propagation of 1,000 revocations, pushed.
propagation propagation

# Scheduled cleanup: one run per 2 s interval across all three replicas.
sleep_until=$((started + 14))
now=$(date +%s)
[ "$now" -lt "$sleep_until" ] && sleep $((sleep_until - now))
elapsed=$(( $(date +%s) - started ))
runs=$(psql -qtA "$url" -c "SELECT count(*) FROM audit_event WHERE action = 'cleanup.run' AND detail LIKE '%scheduled%'")
jq -n --argjson same "$same_keys" --argjson rows "$keys_rows" --argjson runs "$runs" --argjson elapsed "$elapsed" \
  '{replicas: 3, keys_identical: $same, signing_key_rows: $rows, cleanup_interval_s: 2, elapsed_s: $elapsed,
    scheduled_cleanup_runs: $runs, intervals_elapsed: (($elapsed - 2) / 2 | floor + 1)}' > "$out/scale.json"
echo "  scale: $(cat "$out/scale.json")" >&2

# The same on the poll alone: three fresh replicas without a listener.
echo "== three replicas on one PostgreSQL, poll only" >&2
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
pids=()
start_replicas poll TOKEND_DATABASE_LISTEN_URL=off
propagation propagation_poll
