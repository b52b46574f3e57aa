"""WLCG bearer token discovery: its order, a token read afresh at each use, and messages that
say where it looked or when it expired without ever showing the token."""

from __future__ import annotations

import base64
import json
import os
import time

import pytest

from analysis_kernels import bearer_token
from tests.storage.conftest import environment


def _jwt(**claims) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


def test_discovery_order_and_a_rewritten_file_is_read_again(tmp_path):
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    token_file = tmp_path / "token"
    uid = os.getuid()
    with environment(
        BEARER_TOKEN="from-env",
        BEARER_TOKEN_FILE=str(token_file),
        XDG_RUNTIME_DIR=str(runtime),
    ):
        token_file.write_text("from-file\n")
        (runtime / f"bt_u{uid}").write_text("from-runtime")
        assert bearer_token.find().source == "BEARER_TOKEN"
        del os.environ["BEARER_TOKEN"]
        assert bearer_token.find().value == "from-file"
        token_file.write_text("refreshed\n")
        assert bearer_token.find().value == "refreshed"
        token_file.unlink()
        found = bearer_token.find()
        assert (found.value, found.source) == ("from-runtime", f"{runtime}/bt_u{uid}")


def test_no_token_lists_every_place_looked_at(tmp_path):
    with environment(BEARER_TOKEN=None, BEARER_TOKEN_FILE=None, XDG_RUNTIME_DIR=str(tmp_path)):
        if os.path.exists(f"/tmp/bt_u{os.getuid()}"):
            pytest.fail(
                f"/tmp/bt_u{os.getuid()} exists on this machine: remove it to run this test"
            )
        with pytest.raises(bearer_token.TokenError) as refused:
            bearer_token.find("reading root://x//f.root")
    message = str(refused.value)
    assert message.startswith("reading root://x//f.root: no bearer token found")
    assert "BEARER_TOKEN_FILE (not set)" in message and f"{tmp_path}/bt_u" in message


def test_expiry_is_told_in_utc_and_the_token_never_shown(tmp_path):
    stale = _jwt(preferred_username="alice", exp=1_700_000_000, scope="storage.read:/x")
    token = bearer_token.BearerToken(stale, "BEARER_TOKEN")
    with pytest.raises(bearer_token.TokenError) as refused:
        token.check_fresh("opening f")
    assert "expired at 2023-11-14 22:13:20 UTC" in str(refused.value)
    assert stale not in str(refused.value) and stale not in repr(token)
    assert "storage scopes: storage.read:/x" in token.describe()
    bearer_token.BearerToken(_jwt(exp=time.time() + 60), "x").check_fresh("fine")
    bearer_token.BearerToken("opaque-token", "x").check_fresh("no claims to check")
