#!/usr/bin/env bash
# Management calls during a login flood: GET /service-accounts?limit=10 with an admin token
# (wrk, BENCH_MGMT_CONNECTIONS=4 connections) alone, then while BENCH_FLOOD_CONNECTIONS=200
# connections POST /auth/login with wrong passwords. Two floods, each on a fresh server:
# - random: a new unknown login every request, with the throttle's limits raised so every
#   attempt asks for a password check (what a botnet spread over many addresses costs);
# - real: one real login from one address, default limits.
# The baseline is the same server's management calls alone, measured just before its flood.
# Target: management p99 < 100 ms during the flood.
#
#   bench/login_flood.sh WORKDIR OUTDIR                 # about 2 minutes
#   BENCH_LOGIN_FLOOD_BASELINE=/path/to/old/tokend bench/login_flood.sh WORKDIR OUTDIR
#       # also measures another build (e.g. main's) in the same run, labelled "baseline"
#
# Pinned like bench/run.sh: the server on BENCH_SERVER_CPUS (cpu 1; one worker, and one
# password hashing thread since it sees one cpu), both wrk on BENCH_CLIENT_CPUS (cpu 0).
# SQLite (the embedded default). Results: OUTDIR/login_flood_*.json and login_flood.json.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1 out=$2
mkdir -p "$dir" "$out"
# shellcheck source=bench/lib.sh
source bench/lib.sh
DURATION=${BENCH_DURATION:-10s}
MGMT_CONNECTIONS=${BENCH_MGMT_CONNECTIONS:-4}
FLOOD_CONNECTIONS=${BENCH_FLOOD_CONNECTIONS:-200}
pids=()
# shellcheck disable=SC2329 # called by the EXIT trap
finish() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}
trap finish EXIT

# The flood's logins: 50,000 that do not exist, or the one that does.
seq 1 50000 | sed 's/^/nobody-/' > "$dir/random.logins"
echo alice > "$dir/real.logins"

# wrk_to NAME CONNECTIONS DURATION URL [ENV=VALUE...]: one wrk run, summary in $out/NAME.json.
wrk_to() {
  local name=$1 conns=$2 secs=$3 url=$4
  shift 4
  env BENCH_RESULT="$out/$name.json" BENCH_THREADS="$WRK_THREADS" "$@" \
    "${ON_CLIENT[@]}" wrk -t"$WRK_THREADS" -c"$conns" -d"$secs" --timeout 10s -s bench/wrk/bench.lua "$url" \
    > "$out/$name.wrk.txt" 2>&1 || { cat "$out/$name.wrk.txt" >&2; return 1; }
}

scenario() { # LABEL BINARY FLOOD(random|real) [ENV=VALUE...]
  local label=$1 bin=$2 flood=$3 d="$dir/$1_$3" port
  shift 3
  mkdir -p "$d"
  port=$(free_port)
  env TOKEND_DATA_DIR="$d" RUST_LOG=warn TOKEND_WORKERS="$WORKERS" "$@" \
    "${ON_SERVER[@]}" "$bin" serve --listen "127.0.0.1:$port" > "$d.log" 2>&1 &
  local pid=$! url="http://127.0.0.1:$port"
  pids+=("$pid")
  for _ in $(seq 1 300); do curl -sf "$url/ready" >/dev/null 2>&1 && break; sleep 0.05; done
  local admin
  admin=$(env TOKEND_DATA_DIR="$d" "$bin" admin-token --ttl-hours 2)
  echo "correct horse battery staple" | env TOKEND_DATA_DIR="$d" "$bin" user add alice --role viewer --password-stdin > /dev/null
  for n in $(seq 1 20); do
    curl -sf -X POST "$url/service-accounts" -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
      -d "{\"name\":\"sensor:bench.$n\",\"scope\":\"sensor\",\"metadata\":{\"trigger_types\":[\"core.timer\"]}}" > /dev/null
  done
  local mgmt=(BENCH_FIXED_HEADER="Authorization: Bearer $admin")
  echo "== login flood ($label, $flood): management calls alone" >&2
  wrk_to "login_flood_${label}_${flood}_alone" "$MGMT_CONNECTIONS" "$DURATION" "$url/service-accounts?limit=10" "${mgmt[@]}"
  echo "== login flood ($label, $flood): management calls while $FLOOD_CONNECTIONS connections flood /auth/login" >&2
  local secs=${DURATION%s}
  wrk_to "login_flood_${label}_${flood}_logins" "$FLOOD_CONNECTIONS" "$((secs + 4))s" "$url/auth/login" \
    BENCH_METHOD=POST BENCH_BODY_TOKENS=1 BENCH_TOKENS="$dir/$flood.logins" \
    BENCH_BODY='{"login":"{token}","password":"wrong password"}' &
  local flood_pid=$!
  sleep 2
  wrk_to "login_flood_${label}_${flood}_during" "$MGMT_CONNECTIONS" "$DURATION" "$url/service-accounts?limit=10" "${mgmt[@]}"
  wait "$flood_pid"
  # What the flood got back, by status.
  curl -sf "$url/metrics" | awk '/^tokend_logins_total/ {print}' > "$out/login_flood_${label}_${flood}.metrics.txt" || true
  rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  jq -n --arg name "$label" --arg flood "$flood" --argjson rss "$rss_kib" \
    --slurpfile alone "$out/login_flood_${label}_${flood}_alone.json" \
    --slurpfile during "$out/login_flood_${label}_${flood}_during.json" \
    --slurpfile logins "$out/login_flood_${label}_${flood}_logins.json" \
    '{"label": $name, flood: $flood, alone: $alone[0], during: $during[0], logins: $logins[0], rss_kib_after: $rss,
      p99_ratio: (if $alone[0].p99_ms > 0 then ($during[0].p99_ms / $alone[0].p99_ms * 100 | round / 100) else null end),
      target_p99_ms: 100, met: ($during[0].p99_ms < 100)}' > "$out/login_flood_${label}_${flood}.json"
  echo "  management alone:  $(jq -c '{rps, p50_ms, p99_ms, non_2xx}' "$out/login_flood_${label}_${flood}_alone.json")" >&2
  echo "  during the flood:  $(jq -c '{rps, p50_ms, p99_ms, non_2xx, socket_errors}' "$out/login_flood_${label}_${flood}_during.json")" >&2
  echo "  the flood itself:  $(jq -c '{rps, p50_ms, p99_ms, non_2xx, socket_errors}' "$out/login_flood_${label}_${flood}_logins.json")" >&2
  echo "  login outcomes:    $(tr '\n' ' ' < "$out/login_flood_${label}_${flood}.metrics.txt")" >&2
}

# Limits raised so every random attempt reaches a password check (the worst case).
unthrottled=(TOKEND_LOGIN_ADDRESS_MAX_FAILURES=1000000000 TOKEND_LOGIN_ACCOUNT_MAX_FAILURES=1000000000 TOKEND_LOGIN_MAX_FAILURES=1000000000)
TOKEND=$PWD/target/release/tokend
scenario tokend "$TOKEND" random "${unthrottled[@]}"
scenario tokend "$TOKEND" real
if [ -n "${BENCH_LOGIN_FLOOD_BASELINE:-}" ]; then
  scenario baseline "$BENCH_LOGIN_FLOOD_BASELINE" random "${unthrottled[@]}"
  scenario baseline "$BENCH_LOGIN_FLOOD_BASELINE" real
fi
jq -s '.' "$out"/login_flood_*_random.json "$out"/login_flood_*_real.json > "$out/login_flood.json"
jq -r '.[] | "\(.label) \(.flood): management p50/p99 alone \(.alone.p50_ms)/\(.alone.p99_ms) ms, during the flood \(.during.p50_ms)/\(.during.p99_ms) ms (non-2xx \(.during.non_2xx)); target p99 < 100 ms: \(if .met then "met" else "MISSED" end)"' "$out/login_flood.json" >&2
