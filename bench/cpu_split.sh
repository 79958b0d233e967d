#!/usr/bin/env bash
# Where a request's cpu goes: the server's user and system time per request (from
# /proc/PID/stat over one wrk run) for the empty handler, warm and cold GET /auth/verify.
# The kernel's share is the loopback TCP path, the same for all three, so it bounds every
# ratio against the empty handler (bench/README.md, issue 16).
#
#   cargo build --release --bins && bench/cpu_split.sh [EdDSA|HS256]
#
# Pinned as in run.sh (server on BENCH_SERVER_CPUS, wrk on BENCH_CLIENT_CPUS), one worker.
set -euo pipefail
cd "$(dirname "$0")/.."
alg=${1:-HS256}
# shellcheck source=bench/lib.sh
source bench/lib.sh
TOKEND=$PWD/target/release/tokend
BENCH=$PWD/target/release/tokend-bench
dir=$(mktemp -d)
pids=()
# shellcheck disable=SC2329 # called by the EXIT trap
finish() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap finish EXIT
extra=(TOKEND_JWT_ALG="$alg")
[ "$alg" = HS256 ] && extra+=(TOKEND_JWT_SECRET="a benchmark secret of at least thirty-two bytes")
port=$(free_port)
env TOKEND_DATA_DIR="$dir/data" RUST_LOG=warn TOKEND_WORKERS=1 "${extra[@]}" \
  "${ON_SERVER[@]}" "$TOKEND" serve --listen "127.0.0.1:$port" > "$dir/tokend.log" 2>&1 &
pids+=($!)
tokend_pid=$!
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break; sleep 0.05; done
env TOKEND_DATA_DIR="$dir/data" "${extra[@]}" "$BENCH" mint --count 1000 > "$dir/warm"
env TOKEND_DATA_DIR="$dir/data" "${extra[@]}" "$BENCH" mint --count "${BENCH_COLD_TOKENS:-300000}" > "$dir/cold"

measure() { # NAME PID URL TOKENS [once]
  local user0 sys0 user1 sys1 requests
  read -r user0 sys0 < <(awk '{print $14, $15}' "/proc/$2/stat")
  env BENCH_RESULT="$dir/run.json" BENCH_THREADS="$WRK_THREADS" BENCH_HEADER=Authorization \
    BENCH_HEADER_PREFIX="Bearer " BENCH_TOKENS="$4" ${5:+BENCH_ONCE=1} \
    "${ON_CLIENT[@]}" wrk -t"$WRK_THREADS" -c32 -d5s -s bench/wrk/bench.lua "$3" > "$dir/wrk.txt"
  read -r user1 sys1 < <(awk '{print $14, $15}' "/proc/$2/stat")
  requests=$(jq .requests "$dir/run.json")
  # Clock ticks are 1/100 s: ticks * 10,000 / requests = µs per request.
  python3 -c 'import sys; n, u, s = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]); print(f"{sys.argv[1]:<6} {n / 5:>8.0f}/s  user {u * 1e4 / n:5.1f} µs  system {s * 1e4 / n:5.1f} µs per request")' \
    "$1" "$requests" "$((user1 - user0))" "$((sys1 - sys0))"
}

empty_port=$(free_port)
"${ON_SERVER[@]}" "$BENCH" empty-server --listen "127.0.0.1:$empty_port" --workers 1 &
pids+=($!)
empty_pid=$!
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$empty_port/" >/dev/null 2>&1 && break; sleep 0.05; done
measure empty "$empty_pid" "http://127.0.0.1:$empty_port/auth/verify" "$dir/warm"
measure warm "$tokend_pid" "http://127.0.0.1:$port/auth/verify" "$dir/warm"
measure cold "$tokend_pid" "http://127.0.0.1:$port/auth/verify" "$dir/cold" once
