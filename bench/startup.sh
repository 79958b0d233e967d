#!/usr/bin/env bash
# Start-up: from `tokend serve` to GET /ready answering 200 on the embedded default (a fresh
# data directory each time, so migrations and key generation are included), and idle RSS.
#
#   bench/startup.sh WORKDIR OUTDIR
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1 out=$2
mkdir -p "$dir"
# shellcheck source=bench/lib.sh
source bench/lib.sh
TOKEND=$PWD/target/release/tokend
times=()
rss=0
for i in $(seq 1 10); do
  d="$dir/run$i"
  port=$(free_port)
  start=$(date +%s%N)
  TOKEND_DATA_DIR="$d" RUST_LOG=warn "$TOKEND" serve --listen "127.0.0.1:$port" > "$d.log" 2>&1 &
  pid=$!
  until curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1; do sleep 0.005; done
  end=$(date +%s%N)
  times+=("$(( (end - start) / 1000000 ))")
  sleep 1
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
printf '%s\n' "${times[@]}" | sort -n | jq -s --argjson rss "$rss" \
  '{runs: length, ready_ms_median: .[length/2|floor], ready_ms_max: max, idle_rss_kib: $rss}' > "$out/startup.json"
echo "  startup: $(cat "$out/startup.json")" >&2
