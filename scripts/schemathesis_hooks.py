"""schemathesis hooks for tokend: every request carries a fresh admin token.

The fuzzer revokes things (accounts, tokens, its own token via /auth/logout), so a fixed
token would soon be useless. Instead each request logs in as the fuzzing user, whose
credentials come from TOKEND_FUZZ_LOGIN / TOKEND_FUZZ_PASSWORD (set by schemathesis.sh).
"""

import json
import os
import urllib.request

import schemathesis

BASE_URL = os.environ["TOKEND_FUZZ_URL"]
LOGIN = os.environ["TOKEND_FUZZ_LOGIN"]
PASSWORD = os.environ["TOKEND_FUZZ_PASSWORD"]


def login():
    body = json.dumps({"login": LOGIN, "password": PASSWORD}).encode()
    request = urllib.request.Request(
        f"{BASE_URL}/auth/login",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


# The fuzzing user's own id: PATCH or DELETE /users/{id} on it would disable, demote or
# delete the user every request logs in as, and end the run's coverage there.
FUZZ_USER_ID = str(login()["identity_id"])


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    # Every generated case, explicit examples included: aim at another (absent) id instead.
    params = case.path_parameters
    if params and str(params.get("id")) == FUZZ_USER_ID and case.path.startswith("/users/"):
        params["id"] = 2**62


@schemathesis.auth(refresh_interval=None)
class FreshAdminToken:
    def get(self, case, ctx):
        return login()["token"]

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
