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


def rps(name):
    r = runs.get(name) or {}
    # A run that sends each token or id once is no figure when they ran out: the repeats
    # are warm hits (verify) or already revoked (revoke), far cheaper than what it measures.
    if r.get("credentials_reused"):
        return None
    return r.get("rps")


runs = {}
rounds = {}  # name -> [run of round 1, round 2, ...] for runs repeated in rounds (NAME.rN.json)
for path in sorted(out.glob("*.json")):
    if path.name == "results.json":
        continue
    name, _, round_no = path.stem.rpartition(".r")
    if name and round_no.isdigit():
        rounds.setdefault(name, []).append((int(round_no), json.loads(path.read_text())))
    else:
        runs[path.stem] = json.loads(path.read_text())
for name, items in rounds.items():
    items = [r for _, r in sorted(items, key=lambda x: x[0])]
    rounds[name] = items
    # The round with the median requests/s stands for the run; every round is kept.
    median = sorted(items, key=lambda r: r["rps"])[len(items) // 2]
    runs[name] = dict(median, rounds_rps=[r["rps"] for r in items], rounds_p99_ms=[r["p99_ms"] for r in items])


def paired_ratio(a, b):
    """Median over rounds of a/b, each round's runs taken minutes apart at most."""
    ra, rb = rounds.get(a), rounds.get(b)
    if not ra or not rb or len(ra) != len(rb):
        return ratio(rps(a), rps(b))
    values = sorted(x["rps"] / y["rps"] for x, y in zip(ra, rb))
    return round(values[len(values) // 2], 2)


wrk_rows = [
    ("empty_sqlite", "empty actix-web handler, EdDSA tokens sent"),
    ("verify_warm_sqlite", "GET /auth/verify, 1,000 warm tokens (EdDSA)"),
    ("whoami_warm_sqlite", "GET /auth/whoami, 1,000 warm tokens (EdDSA)"),
    ("verify_cold_sqlite", "GET /auth/verify, every token new (EdDSA)"),
    ("verify_badsig_sqlite", "GET /auth/verify, bad signature (EdDSA)"),
    ("empty_sqlite_hs256", "empty actix-web handler, HS256 tokens sent"),
    ("verify_warm_sqlite_hs256", "GET /auth/verify, 1,000 warm tokens (HS256)"),
    ("verify_cold_sqlite_hs256", "GET /auth/verify, every token new (HS256)"),
    ("verify_badsig_sqlite_hs256", "GET /auth/verify, bad signature (HS256)"),
    ("issue_sqlite", "POST /service-accounts, SQLite"),
    ("issue_pg", "POST /service-accounts, PostgreSQL"),
    ("revoke_sqlite", "DELETE /service-accounts/{id}, SQLite"),
    ("revoke_pg", "DELETE /service-accounts/{id}, PostgreSQL"),
    ("oauth_cc_sqlite", "POST /oauth2/token client_credentials, SQLite"),
    ("oauth_cc_pg", "POST /oauth2/token client_credentials, PostgreSQL"),
    ("oauth_jwt_bearer_sqlite", "POST /oauth2/token jwt-bearer (federation), SQLite"),
    ("oauth_jwt_bearer_pg", "POST /oauth2/token jwt-bearer (federation), PostgreSQL"),
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
print(f"{'run':<48} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}  rounds (req/s)")
print("-" * 110)
for key, label in wrk_rows:
    r = runs.get(key)
    if not r:
        continue
    each = " ".join(f"{x:.0f}" for x in r.get("rounds_rps", []))
    if r.get("credentials_reused"):
        each = "RAN OUT of tokens/ids: not a figure (make more)"
    print(f"{label:<48} {r['rps']:>10.0f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['non_2xx']:>8}  {each}")

crypto = runs.get("crypto", {})
ratios = {
    "verify_warm / empty": paired_ratio("verify_warm_sqlite", "empty_sqlite"),
    "whoami_warm / empty": paired_ratio("whoami_warm_sqlite", "empty_sqlite"),
    "verify_warm_hs256 / empty": paired_ratio("verify_warm_sqlite_hs256", "empty_sqlite_hs256"),
    "verify_cold_hs256 / empty": ratio(rps("verify_cold_sqlite_hs256"), rps("empty_sqlite_hs256")),
    "verify_cold_eddsa / raw ed25519 verify": ratio(rps("verify_cold_sqlite"), crypto.get("ed25519_verify_per_s")),
    # A wrongly signed token costs no more than a cold valid one (bad-token floods).
    "verify_badsig_eddsa / verify_cold_eddsa": ratio(rps("verify_badsig_sqlite"), rps("verify_cold_sqlite")),
    "verify_badsig_hs256 / verify_cold_hs256": ratio(rps("verify_badsig_sqlite_hs256"), rps("verify_cold_sqlite_hs256")),
    "issue_sqlite / openbao_create": ratio(rps("issue_sqlite"), rps("openbao_create")),
    "issue_pg / openbao_create": ratio(rps("issue_pg"), rps("openbao_create")),
    "verify_warm / openbao_lookup_self": ratio(rps("verify_warm_sqlite"), rps("openbao_lookup_self")),
    "revoke_sqlite / openbao_revoke": ratio(rps("revoke_sqlite"), rps("openbao_revoke")),
    "revoke_pg / openbao_revoke": ratio(rps("revoke_pg"), rps("openbao_revoke")),
    "oauth_cc_sqlite / hydra_published_411": ratio(rps("oauth_cc_sqlite"), 411),
    "oauth_cc_pg / hydra_published_411": ratio(rps("oauth_cc_pg"), 411),
}
absolute = {
    "oauth_cc_sqlite tokens/s": (rps("oauth_cc_sqlite"), 1250),
    "oauth_cc_pg tokens/s": (rps("oauth_cc_pg"), 1250),
    "oauth_jwt_bearer_sqlite tokens/s": (rps("oauth_jwt_bearer_sqlite"), 1000),
    "oauth_jwt_bearer_pg tokens/s": (rps("oauth_jwt_bearer_pg"), 1000),
}
# Issue 16's targets for the hot path and the writes; the OpenBao lookup and OAuth ones from
# earlier issues.
targets = {
    "verify_warm / empty": 0.92,
    "verify_warm_hs256 / empty": 0.92,
    "verify_cold_hs256 / empty": 0.6,
    "verify_cold_eddsa / raw ed25519 verify": 0.8,
    "verify_badsig_eddsa / verify_cold_eddsa": 1.0,
    "verify_badsig_hs256 / verify_cold_hs256": 1.0,
    "issue_sqlite / openbao_create": 10.0,
    "issue_pg / openbao_create": 6.0,
    "revoke_sqlite / openbao_revoke": 40.0,
    "revoke_pg / openbao_revoke": 15.0,
    "verify_warm / openbao_lookup_self": 30.0,
    "oauth_cc_sqlite / hydra_published_411": 3.0,
    "oauth_cc_pg / hydra_published_411": 3.0,
}
print()
print(f"{'ratio':<44} {'measured':>9} {'target':>8}")
print("-" * 64)
for name, value in ratios.items():
    target = targets.get(name)
    mark = "" if target is None or value is None else ("  ok" if value >= target else "  MISSED")
    print(f"{name:<44} {value if value is not None else '-':>9} {('>= ' + str(target)) if target else '':>8}{mark}")
for name, (value, target) in absolute.items():
    if value is None:
        continue
    mark = "  ok" if value >= target else "  MISSED"
    print(f"{name:<44} {value:>9.0f} {'>= ' + str(target):>8}{mark}")
p99 = (runs.get("verify_warm_sqlite") or {}).get("p99_ms")
if p99 is not None:
    mark = "  ok" if p99 < 0.5 else "  MISSED"
    print(f"{'verify_warm p99 (ms, target < 0.5)':<44} {p99:>9.3f}{mark}")
print()
print("crypto primitive:", json.dumps(crypto))

# Where a cold EdDSA verification's time goes, per request on one server cpu.
us = lambda per_s: 1e6 / per_s if per_s else None  # noqa: E731
split = {
    "cold_request_us": us(rps("verify_cold_sqlite")),
    "http_us (empty handler)": us(rps("empty_sqlite")),
    "ed25519_verify_us (raw)": us(crypto.get("ed25519_verify_per_s")),
    "tokend_verify_us (no HTTP)": us(crypto.get("tokend_verify_new_token_eddsa_per_s")),
}
if all(split.values()) and meta.get("server_workers"):
    w = meta["server_workers"]
    split = {k: round(v * w, 1) for k, v in split.items()}
    split["rest_us (cold - http - tokend_verify)"] = round(
        split["cold_request_us"] - split["http_us (empty handler)"] - split["tokend_verify_us (no HTTP)"], 1)
    ratios["cold_eddsa_split_us"] = split
    print("cold EdDSA request, microseconds of one server cpu:", json.dumps(split))
for key in ["cleanup_sqlite", "verify_during_cleanup_sqlite", "cleanup_pg", "verify_during_cleanup_pg",
            "memory", "propagation", "propagation_poll", "scale", "startup"]:
    if key in runs:
        print(f"{key}: {json.dumps(runs[key])}")

flood = runs.get("login_flood")
if isinstance(flood, list):
    print()
    print(f"{'management GET /service-accounts?limit=10':<44} {'alone p50/p99 ms':>18} {'during p50/p99 ms':>19} {'target':>12}")
    print("-" * 98)
    for f in flood:
        a, d = f["alone"], f["during"]
        mark = "ok" if f["met"] else "MISSED"
        print(f"{f['label'] + ', login flood ' + f['flood']:<44} {a['p50_ms']:>8.2f}/{a['p99_ms']:<9.2f} "
              f"{d['p50_ms']:>8.2f}/{d['p99_ms']:<10.2f} {'p99 < 100':>9} {mark}")
        ratios[f"login_flood_{f['label']}_{f['flood']}_p99_during / alone"] = f["p99_ratio"]

(out / "results.json").write_text(json.dumps({"meta": meta, "runs": runs, "ratios": ratios, "targets": targets}, indent=2) + "\n")
print()
print(f"written: {out / 'results.json'}")
