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


@schemathesis.auth(refresh_interval=None)
class FreshAdminToken:
    def get(self, case, ctx):
        body = json.dumps({"login": LOGIN, "password": PASSWORD}).encode()
        request = urllib.request.Request(
            f"{BASE_URL}/auth/login",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["token"]

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
