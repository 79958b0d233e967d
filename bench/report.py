"""Turns a bench/run.sh result directory into a table (stdout) and results.json.

    python3 bench/report.py bench/results/<timestamp>
"""

import json
import pathlib
import sys

out = pathlib.Path(sys.argv[1])


def read(name):
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def ratio(a, b):
    return round(a / b, 2) if a and b else None


runs = {}
for path in sorted(out.glob("*.json")):
    if path.name == "results.json":
        continue
    runs[path.stem] = json.loads(path.read_text())

wrk_rows = [
    ("empty", "empty actix-web handler (HTTP ceiling)"),
    ("verify_warm_sqlite", "GET /auth/verify, 1,000 warm tokens (EdDSA)"),
    ("whoami_warm_sqlite", "GET /auth/whoami, 1,000 warm tokens (EdDSA)"),
    ("verify_cold_sqlite", "GET /auth/verify, every token new (EdDSA)"),
    ("verify_warm_sqlite_hs256", "GET /auth/verify, 1,000 warm tokens (HS256)"),
    ("verify_cold_sqlite_hs256", "GET /auth/verify, every token new (HS256)"),
    ("issue_sqlite", "POST /service-accounts, SQLite"),
    ("issue_pg", "POST /service-accounts, PostgreSQL"),
    ("revoke_sqlite", "DELETE /service-accounts/{id}, SQLite"),
    ("revoke_pg", "DELETE /service-accounts/{id}, PostgreSQL"),
    ("openbao_create", "OpenBao auth/token/create"),
    ("openbao_lookup_self", "OpenBao auth/token/lookup-self"),
    ("openbao_revoke", "OpenBao auth/token/revoke"),
]

meta = runs.get("meta", {})
print()
print(f"tokend benchmark: {meta.get('connections')} connections, {meta.get('duration')} per run, "
      f"wrk {meta.get('wrk_threads')} threads, {meta.get('server_workers')} server workers, "
      f"{meta.get('cores')} cores ({meta.get('cpu')})")
print()
print(f"{'run':<48} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
print("-" * 86)
for key, label in wrk_rows:
    r = runs.get(key)
    if not r:
        continue
    print(f"{label:<48} {r['rps']:>10.0f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['non_2xx']:>8}")

rps = lambda k: (runs.get(k) or {}).get("rps")  # noqa: E731
crypto = runs.get("crypto", {})
ratios = {
    "verify_warm / empty": ratio(rps("verify_warm_sqlite"), rps("empty")),
    "verify_cold_hs256 / empty": ratio(rps("verify_cold_sqlite_hs256"), rps("empty")),
    "verify_cold_eddsa / raw ed25519 verify": ratio(rps("verify_cold_sqlite"), crypto.get("ed25519_verify_per_s")),
    "issue_sqlite / openbao_create": ratio(rps("issue_sqlite"), rps("openbao_create")),
    "issue_pg / openbao_create": ratio(rps("issue_pg"), rps("openbao_create")),
    "verify_warm / openbao_lookup_self": ratio(rps("verify_warm_sqlite"), rps("openbao_lookup_self")),
    "revoke_sqlite / openbao_revoke": ratio(rps("revoke_sqlite"), rps("openbao_revoke")),
    "revoke_pg / openbao_revoke": ratio(rps("revoke_pg"), rps("openbao_revoke")),
}
targets = {
    "verify_warm / empty": 0.85,
    "verify_cold_hs256 / empty": 0.5,
    "verify_cold_eddsa / raw ed25519 verify": 0.8,
    "issue_sqlite / openbao_create": 3.0,
    "issue_pg / openbao_create": 2.0,
    "verify_warm / openbao_lookup_self": 30.0,
}
print()
print(f"{'ratio':<44} {'measured':>9} {'target':>8}")
print("-" * 64)
for name, value in ratios.items():
    target = targets.get(name)
    mark = "" if target is None or value is None else ("  ok" if value >= target else "  MISSED")
    print(f"{name:<44} {value if value is not None else '-':>9} {('>= ' + str(target)) if target else '':>8}{mark}")
p99 = (runs.get("verify_warm_sqlite") or {}).get("p99_ms")
if p99 is not None:
    print(f"{'verify_warm p99 (ms, target < 2)':<44} {p99:>9.3f}")
print()
print("crypto primitive:", json.dumps(crypto))
for key in ["cleanup_sqlite", "verify_during_cleanup_sqlite", "cleanup_pg", "verify_during_cleanup_pg",
            "memory", "propagation", "scale", "startup"]:
    if key in runs:
        print(f"{key}: {json.dumps(runs[key])}")

(out / "results.json").write_text(json.dumps({"runs": runs, "ratios": ratios, "targets": targets}, indent=2) + "\n")
print()
print(f"written: {out / 'results.json'}")
