#!/usr/bin/env bash
# A/B of two builds on warm GET /auth/verify: alternating rounds, pinned like bench/run.sh
# (server on BENCH_SERVER_CPUS with one worker, wrk on BENCH_CLIENT_CPUS), 1,000 warm tokens,
# 32 connections. For "did this change move the hot path?" within this machine's drift.
#
#   bench/ab.sh OLD_DIR NEW_DIR [ROUNDS] [SECONDS]
#
# Each DIR holds a release `tokend` and `tokend-bench` (e.g. a target/release of the commit
# before, built with CARGO_TARGET_DIR elsewhere). Prints one line per round and run.
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?OLD_DIR with tokend and tokend-bench} new=${2:?NEW_DIR}
rounds=${3:-3} seconds=${4:-8}
# shellcheck source=bench/lib.sh
source bench/lib.sh
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

run_one() { # LABEL DIR ROUND
  local label=$1 bin=$2 round=$3 dir port pid
  dir=$(mktemp -d)
  chmod 700 "$dir"
  port=$(free_port)
  env TOKEND_DATA_DIR="$dir" RUST_LOG=warn TOKEND_WORKERS=1 "${ON_SERVER[@]}" "$bin/tokend" serve \
    --listen "127.0.0.1:$port" > "$dir.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/ready" > /dev/null 2>&1 && break; sleep 0.05; done
  env TOKEND_DATA_DIR="$dir" "$bin/tokend-bench" mint --count 1000 > "$dir/warm.tokens"
  env BENCH_RESULT="$out/$label.$round.json" BENCH_THREADS=1 BENCH_HEADER=Authorization \
    BENCH_HEADER_PREFIX="Bearer " BENCH_TOKENS="$dir/warm.tokens" "${ON_CLIENT[@]}" \
    wrk -t1 -c32 -d"${seconds}s" --timeout 10s -s bench/wrk/bench.lua "http://127.0.0.1:$port/auth/verify" > /dev/null 2>&1
  kill "$pid"
  wait "$pid" 2> /dev/null || true
  rm -rf "$dir" "$dir.log"
  echo "$label round $round: $(jq -c '{rps, p50_ms, p99_ms}' "$out/$label.$round.json")"
}
for round in $(seq 1 "$rounds"); do
  run_one old "$old" "$round"
  run_one new "$new" "$round"
done
