"""A third-party verifier for tests: PyJWT with its JWKS client, as a gateway would run it.

Reads one token per line on stdin and answers `ok <sub>` or `fail <reason>` per line. One
PyJWKClient lives for the whole run, caching the key set the way long-running verifiers do.

    python3 scripts/jwks_verifier.py http://127.0.0.1:8080 [audience] [cache seconds]

Set the cache lifetime to tokend's `Cache-Control: max-age` (TOKEND_JWKS_MAX_AGE, 300 s by
default): tokend publishes a key at least that long before it signs with it.
"""

import sys

import jwt

base = sys.argv[1].rstrip("/")
audience = sys.argv[2] if len(sys.argv) > 2 else "tokend"
lifespan = float(sys.argv[3]) if len(sys.argv) > 3 else 300
client = jwt.PyJWKClient(f"{base}/.well-known/jwks.json", cache_jwk_set=True, lifespan=lifespan)

for line in sys.stdin:
    token = line.strip()
    if not token:
        continue
    try:
        key = client.get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key, algorithms=["EdDSA"], audience=audience, issuer="tokend")
        print(f"ok {claims['sub']}", flush=True)
    except Exception as e:  # noqa: BLE001 - report every failure to the test
        print(f"fail {type(e).__name__}: {e}", flush=True)
