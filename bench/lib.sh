# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables set here are for the scripts that source this file
# Shared by the bench/ scripts (sourced, not run).
#
# Pinning: servers on BENCH_SERVER_CPUS (default cpu 1), wrk on BENCH_CLIENT_CPUS (default
# cpu 0), so the load generator never takes cycles from the server it measures. Sets
# ON_SERVER / ON_CLIENT (command prefixes, empty when not pinning), WORKERS (server workers:
# one per server cpu) and WRK_THREADS (one per client cpu).

cpu_count() { # a taskset cpu list ("1", "2-3", "0,2") -> how many cpus
  python3 -c 'import sys; print(sum(int(b) - int(a) + 1 for a, _, b in (p.partition("-") if "-" in p else (p, "", p) for p in sys.argv[1].split(","))))' "$1"
}

if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  SERVER_CPUS=${BENCH_SERVER_CPUS:-1}
  CLIENT_CPUS=${BENCH_CLIENT_CPUS:-0}
  ON_SERVER=(taskset -c "$SERVER_CPUS")
  ON_CLIENT=(taskset -c "$CLIENT_CPUS")
  WORKERS=${BENCH_WORKERS:-$(cpu_count "$SERVER_CPUS")}
  WRK_THREADS=${BENCH_WRK_THREADS:-$(cpu_count "$CLIENT_CPUS")}
else
  SERVER_CPUS="" CLIENT_CPUS=""
  ON_SERVER=() ON_CLIENT=()
  WORKERS=${BENCH_WORKERS:-$(nproc)}
  WRK_THREADS=${BENCH_WRK_THREADS:-$(nproc)}
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
