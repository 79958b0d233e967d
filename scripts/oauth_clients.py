"""Stock OAuth 2.0 clients against a running tokend, used exactly as their documentation
shows, over HTTPS, with no "testing" or "insecure" switch: authlib and requests-oauth2client
discover the endpoints from the RFC 8414 metadata, obtain tokens by client_credentials with
client_secret_basic and client_secret_post (and requests-oauth2client with private_key_jwt),
introspect them (RFC 7662) and revoke them (RFC 7009).

Run by tests/api/stock_clients.rs, which starts tokend with a test CA and reads the JSON this
prints (the tokens obtained, so it can check on the server that they are revoked):

    TOKEND_OAUTH_METADATA=https://127.0.0.1:PORT/.well-known/oauth-authorization-server \
    REQUESTS_CA_BUNDLE=ca.pem TOKEND_OAUTH_CLIENTS='[["sa-2", "tokend_cs_…"], …]' \
    python scripts/oauth_clients.py
"""

import json
import os
import sys

import requests
from authlib.integrations.requests_client import OAuth2Session
from requests_oauth2client import ClientSecretBasic, ClientSecretPost, OAuth2Client, PrivateKeyJwt

METADATA_URL = os.environ["TOKEND_OAUTH_METADATA"]
CLIENTS = json.loads(os.environ["TOKEND_OAUTH_CLIENTS"])  # [[client_id, client_secret], ...]
SCOPE = os.environ.get("TOKEND_OAUTH_SCOPE", "sensor")
# Optional: [client_id, private JWK] of a client that authenticates with private_key_jwt.
KEYED = json.loads(os.environ.get("TOKEND_OAUTH_KEYED_CLIENT", "null"))


def check(condition, what):
    if not condition:
        print(f"oauth_clients.py: {what}", file=sys.stderr)
        sys.exit(1)


def with_requests_oauth2client(client_id, secret, method):
    if method == "private_key_jwt":
        auth = PrivateKeyJwt(client_id, secret)  # secret: the private JWK; each request signs a new assertion
    else:
        auth = (ClientSecretBasic if method == "client_secret_basic" else ClientSecretPost)(client_id, secret)
    client = OAuth2Client.from_discovery_endpoint(METADATA_URL, auth=auth)
    token = client.client_credentials(scope=SCOPE)
    check(token.expires_in and token.expires_in > 0, f"requests-oauth2client {method}: no expires_in")
    seen = client.introspect_token(token)
    check(seen.get("active") is True and seen.get("client_id") == client_id, f"introspection: {seen}")
    check(client.revoke_access_token(token) is True, "revocation refused")
    seen = client.introspect_token(token)
    check(seen == {"active": False}, f"introspection after revocation: {seen}")
    return str(token.access_token)


def with_authlib(client_id, secret, method):
    metadata = requests.get(METADATA_URL, timeout=10).json()
    check(method in metadata["token_endpoint_auth_methods_supported"], f"{method} not advertised")
    session = OAuth2Session(client_id, secret, scope=SCOPE, token_endpoint_auth_method=method)
    token = session.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    check(token["token_type"].lower() == "bearer" and token["expires_in"] > 0, f"authlib token: {token}")
    seen = session.introspect_token(metadata["introspection_endpoint"], token=token["access_token"]).json()
    check(seen.get("active") is True, f"authlib introspection: {seen}")
    answer = session.revoke_token(
        metadata["revocation_endpoint"], token=token["access_token"], token_type_hint="access_token"
    )
    check(answer.status_code == 200, f"authlib revocation: {answer.status_code} {answer.text}")
    seen = session.introspect_token(metadata["introspection_endpoint"], token=token["access_token"]).json()
    check(seen == {"active": False}, f"authlib introspection after revocation: {seen}")
    # A wrong secret is refused the way the library understands.
    wrong = OAuth2Session(client_id, "tokend_cs_wrong", token_endpoint_auth_method=method)
    try:
        wrong.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
        check(False, "a wrong secret got a token")
    except Exception as e:  # authlib raises OAuthError subclasses carrying the RFC 6749 code
        check(getattr(e, "error", None) == "invalid_client", f"wrong secret: {e!r}")
    return token["access_token"]


tokens = []
for (client_id, secret), method in zip(CLIENTS, ["client_secret_basic", "client_secret_post"]):
    tokens.append({"library": "requests-oauth2client", "method": method,
                   "token": with_requests_oauth2client(client_id, secret, method)})
    tokens.append({"library": "authlib", "method": method, "token": with_authlib(client_id, secret, method)})
if KEYED:
    client_id, private_jwk = KEYED
    tokens.append({"library": "requests-oauth2client", "method": "private_key_jwt",
                   "token": with_requests_oauth2client(client_id, private_jwk, "private_key_jwt")})
print(json.dumps(tokens))
