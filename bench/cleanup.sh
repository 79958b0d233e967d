#!/usr/bin/env bash
# Cleanup at scale and revocation-set memory:
# - 1,000,000 revocation rows of which 900,000 have expired, on SQLite and on PostgreSQL:
#   one cleanup run must delete exactly the 900,000 while GET /auth/verify keeps its p99
#   under 5 ms (wrk runs during the cleanup); reports the time the run took;
# - the RSS of a tokend holding 1,000,000 live revocations in memory.
#
# Not pinned like the other runs: tokend gets both cpus (2 workers), as in production, and
# the cleanup runs on its blocking pool beside the request workers.
#
#   bench/cleanup.sh WORKDIR OUTDIR PG_ADMIN_URL
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1 out=$2 pg_admin=$3
mkdir -p "$dir"
# shellcheck source=bench/lib.sh
source bench/lib.sh
TOKEND=$PWD/target/release/tokend
BENCH=$PWD/target/release/tokend-bench
pids=()
dbs=()
# shellcheck disable=SC2329 # called by the EXIT trap
finish() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  for db in "${dbs[@]}"; do psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
}
trap finish EXIT

scenario() { # LABEL [DATABASE_URL]
  local label=$1 db=${2:-} d="$dir/$1" port env_db=()
  mkdir -p "$d"
  [ -n "$db" ] && env_db=(TOKEND_DATABASE_URL="$db")
  echo "== cleanup at scale on $label: seeding 1,000,000 revocations (900,000 expired)" >&2
  env TOKEND_DATA_DIR="$d" "${env_db[@]}" "$BENCH" seed-revocations --live 100000 --expired 900000
  port=$(free_port)
  # The hourly worker stays out of the way; the run below is the one measured.
  env TOKEND_DATA_DIR="$d" "${env_db[@]}" RUST_LOG=warn TOKEND_WORKERS="${BENCH_WORKERS:-2}" \
    TOKEND_CLEANUP_INTERVAL=24h "$TOKEND" serve --listen "127.0.0.1:$port" > "$d.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.1; done
  local admin
  admin=$(env TOKEND_DATA_DIR="$d" "${env_db[@]}" "$TOKEND" admin-token)
  env TOKEND_DATA_DIR="$d" "${env_db[@]}" "$BENCH" mint --count 1000 > "$d/warm.tokens"
  # Verify under load for the whole cleanup run: 5-second wrk runs back to back until the
  # cleanup answers. The figure is the worst segment's p99 (p99s cannot be merged).
  curl -sf -X POST -H "Authorization: Bearer $admin" "http://127.0.0.1:$port/admin/cleanup" \
    > "$out/cleanup_$label.json" &
  local cleanup_pid=$! seg=0
  while kill -0 "$cleanup_pid" 2>/dev/null; do
    seg=$((seg + 1))
    env BENCH_RESULT="$d/verify.$seg.json" BENCH_THREADS=1 BENCH_HEADER=Authorization \
      BENCH_HEADER_PREFIX="Bearer " BENCH_TOKENS="$d/warm.tokens" \
      wrk -t1 -c32 -d5s -s bench/wrk/bench.lua "http://127.0.0.1:$port/auth/verify" > /dev/null 2>&1
  done
  wait "$cleanup_pid"
  jq -s '{segments: length, seconds: (map(.seconds) | add), requests: (map(.requests) | add),
          rps: ((map(.requests) | add) / (map(.seconds) | add)), p99_ms_worst_segment: (map(.p99_ms) | max),
          p99_ms_segments: map(.p99_ms), max_ms: (map(.max_ms) | max), non_2xx: (map(.non_2xx) | add)}' \
    "$d"/verify.*.json > "$out/verify_during_cleanup_$label.json"
  local left
  left=$(curl -sf "http://127.0.0.1:$port/metrics" | awk '/^tokend_revocation_rows / {print $2}')
  jq --argjson left "${left:-0}" '. + {rows_left: $left}' "$out/cleanup_$label.json" > "$out/cleanup_$label.json.tmp"
  mv "$out/cleanup_$label.json.tmp" "$out/cleanup_$label.json"
  echo "  cleanup_$label: $(cat "$out/cleanup_$label.json")" >&2
  echo "  verify during it: $(cat "$out/verify_during_cleanup_$label.json")" >&2
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

scenario sqlite
if [[ ",${BENCH_SKIP:-}," != *",pg,"* ]]; then
  db="tokend_bench_cleanup_$RANDOM"
  psql -q "$pg_admin" -c "CREATE DATABASE $db" >/dev/null
  dbs+=("$db")
  scenario pg "${pg_admin%/*}/$db"
fi

echo "== memory: 1,000,000 live revocations in the set" >&2
d="$dir/memory"
mkdir -p "$d"
env TOKEND_DATA_DIR="$d" "$BENCH" seed-revocations --live 1000000 --expired 0
port=$(free_port)
env TOKEND_DATA_DIR="$d" RUST_LOG=warn TOKEND_WORKERS="${BENCH_WORKERS:-2}" "$TOKEND" serve --listen "127.0.0.1:$port" > "$d.log" 2>&1 &
pid=$!
pids+=("$pid")
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.1; done
size=$(curl -sf "http://127.0.0.1:$port/metrics" | awk '/^tokend_revocation_set_size / {print $2}')
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
# At ready the allocator still holds what loading freed (mimalloc returns it to the system
# after a delay, and the figure at ready moved by 15 MB between runs of one build): the
# settled figure, 10 s later, is what the set itself costs.
sleep 10
settled=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
peak=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
jq -n --argjson size "${size:-0}" --argjson rss "$rss" --argjson settled "$settled" --argjson peak "$peak" \
  '{revocation_set_size: $size, rss_kib: $rss, rss_settled_kib: $settled, rss_peak_kib: $peak}' > "$out/memory.json"
echo "  memory: $(cat "$out/memory.json")" >&2
