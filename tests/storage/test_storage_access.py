"""Who may read and write what on the token-protected storage, through the facility's client
and, for the attacks, straight at the server (XRootD's own client, plain HTTP requests)."""

from __future__ import annotations

import datetime
import json
import os
import subprocess

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from analysis_kernels import run
from analysis_kernels.errors import InputError
from analysis_kernels.executor.processes import free_port
from tests.outputs import same_output
from tests.storage.conftest import as_user, environment, write_token

DS = "/store/cms/ds/ds_0000.root"


@pytest.fixture(scope="module")
def tokens(grid) -> dict[str, str]:
    return {user: grid.token(user)["access_token"] for user in ("alice", "bob")}


def test_alice_reads_cms_over_root_and_https_as_from_local_files(grid, tokens, datasets, tmp_path):
    local = run("ds", datasets["ds"], chunk_size=30_000)
    s = grid.storage
    with as_user(grid, tmp_path / "token", tokens["alice"]):
        over_root = run("ds", s.url("/store/cms/ds"), chunk_size=30_000)  # a directory, listed
        over_https = run(
            "ds",
            [s.url(f"/store/cms/ds/ds_000{i}.root", "https") for i in range(2)],
            chunk_size=30_000,
        )
    for report in (over_root, over_https):
        assert report.complete and report.events_processed == local.events_total
        same_output(report.output, local.output)
    assert [f.rsplit("/", 1)[1] for f in over_root.events_per_file] == [
        "ds_0000.root",
        "ds_0001.root",
    ]


@pytest.mark.parametrize("scheme", ["root", "https"])
def test_bob_of_atlas_is_refused_cms_data_with_what_he_lacks(grid, tokens, tmp_path, scheme):
    url = grid.storage.url(DS, scheme)
    with as_user(grid, tmp_path / "token", tokens["bob"]), pytest.raises(InputError) as refused:
        run("ds", url)
    message = str(refused.value)
    assert message.startswith(f"{url}: permission denied for reading {DS}")
    assert "the token of bob" in message and "groups: /atlas" in message
    assert "storage.read:/user/bob" in message and "It needs the scope storage.read" in message
    assert tokens["bob"] not in message


def test_a_glob_over_the_storage_listing(grid, tokens, tmp_path):
    with as_user(grid, tmp_path / "token", tokens["alice"]):
        report = run("ds", grid.storage.url("/store/cms/ds/*_0001.root"), chunk_size=60_000)
    assert list(report.events_per_file) == [grid.storage.url("/store/cms/ds/ds_0001.root")]


def test_no_token_says_where_it_looked(grid, tmp_path):
    env = grid.facility.client_environment()
    missing = tmp_path / "no-such-token"
    with (
        environment(**env, BEARER_TOKEN=None, BEARER_TOKEN_FILE=str(missing)),
        environment(XDG_RUNTIME_DIR=str(tmp_path)),
        pytest.raises(InputError) as refused,
    ):
        run("ds", grid.storage.url(DS))
    message = str(refused.value)
    assert "no bearer token found" in message
    for place in (
        "BEARER_TOKEN",
        f"BEARER_TOKEN_FILE={missing}",
        f"{tmp_path}/bt_u{os.getuid()}",
        f"/tmp/bt_u{os.getuid()}",
    ):
        assert place in message
    assert "log in again" in message


def test_an_expired_token_says_when_it_expired(grid, tokens, tmp_path):
    """The client refuses it before the storage does (which refuses it too: see below)."""
    claims = jwt.decode(tokens["alice"], options={"verify_signature": False})
    claims["exp"] = 1_700_000_000
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stale = jwt.encode(claims, key, algorithm="RS256")
    with as_user(grid, tmp_path / "token", stale), pytest.raises(InputError) as refused:
        run("ds", grid.storage.url(DS, "https"))
    when = datetime.datetime.fromtimestamp(1_700_000_000, datetime.UTC)
    assert f"expired at {when:%Y-%m-%d %H:%M:%S} UTC" in str(refused.value)


def test_a_token_file_others_can_read_is_named(grid, tokens, tmp_path):
    token = write_token(tmp_path / "token", tokens["alice"])
    with as_user(grid, token, tokens["alice"]):
        token.chmod(0o644)
        with pytest.raises(InputError, match=f"chmod 600 {token}"):
            run("ds", grid.storage.url(DS))


@pytest.mark.parametrize("scheme", ["root", "https"])
def test_a_server_that_is_down_is_named_and_skippable(grid, tokens, tmp_path, scheme):
    down = (
        f"root://127.0.0.1:{free_port()}/{DS}"
        if scheme == "root"
        else f"https://127.0.0.1:{free_port()}{DS}"
    )
    with as_user(grid, tmp_path / "token", tokens["alice"]):
        with pytest.raises(InputError, match="does not answer"):
            run("ds", down)
        report = run("ds", [grid.storage.url(DS), down], skip_bad=True)
    assert report.events_processed == report.events_total == 60_000
    [unreadable] = report.unreadable_files
    assert unreadable["file"] == down and "does not answer" in unreadable["error"]


# Attacks, straight at the server: nothing of the facility's client in the way.


def _xrdcp(grid, token: str, source: str, target: str) -> subprocess.CompletedProcess:
    env = os.environ | grid.facility.client_environment() | {"BEARER_TOKEN": token}
    env.pop("BEARER_TOKEN_FILE", None)
    return subprocess.run(
        ["xrdcp", "--force", "--nopbar", source, target],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _https(grid, method: str, path: str, token: str, data: bytes | None = None):
    return requests.request(
        method,
        grid.storage.https_url + path,
        headers={"Authorization": f"Bearer {token}"},
        data=data,
        verify=str(grid.facility.ca.ca_file),
        timeout=30,
    )


def _forged(claims: dict, kid: str | None) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid} if kid else None)


def _iam_kid(grid) -> str:
    keys = json.loads((grid.facility.state_dir / "secrets" / "idp-keys.json").read_text())
    return keys["keys"][0]["kid"]


def test_tokens_the_storage_must_not_accept(grid, tokens, tmp_path):
    """Another audience, another signing key (under the IAM's key id, and under a new one),
    an expired token, and one naming another issuer: refused over both protocols."""
    claims = jwt.decode(tokens["alice"], options={"verify_signature": False})
    hour = int(datetime.datetime.now(datetime.UTC).timestamp()) + 3600
    bad = {
        "other audience": grid.token("alice", resource="https://elsewhere.example.org")[
            "access_token"
        ],
        "other key, IAM's kid": _forged(claims, _iam_kid(grid)),
        "other key, new kid": _forged(claims, "attacker"),
        "expired": _forged(claims | {"exp": 1_700_000_000}, _iam_kid(grid)),
        "other issuer": _forged(claims | {"iss": "https://127.0.0.1:1", "exp": hour}, "x"),
    }
    assert jwt.decode(bad["other audience"], options={"verify_signature": False})["aud"] == (
        "https://elsewhere.example.org"
    )
    assert _https(grid, "GET", DS, tokens["alice"]).status_code == 200
    copy = _xrdcp(grid, tokens["alice"], grid.storage.url(DS), str(tmp_path / "ok.root"))
    assert copy.returncode == 0, copy.stderr
    for what, token in bad.items():
        assert _https(grid, "GET", DS, token).status_code in (401, 403), what
        copy = _xrdcp(grid, token, grid.storage.url(DS), str(tmp_path / "x.root"))
        assert copy.returncode != 0, what
        assert "Auth failed" in copy.stderr or "ermission denied" in copy.stderr, copy.stderr


def test_bob_cannot_climb_out_of_his_area(grid, tokens, tmp_path):
    """Paths with ``..`` from bob's own area into alice's, or into /store/cms."""
    local = tmp_path / "evil.root"
    local.write_bytes(b"not alice's")
    alice_area = grid.storage.data / "store" / "user" / "alice"
    for path in (
        "/store/user/bob/../alice/evil.root",
        "/store/user/bob/../../user/alice/evil.root",
    ):
        reply = _https(grid, "PUT", path, tokens["bob"], data=local.read_bytes())
        assert reply.status_code >= 400, path
        copy = _xrdcp(grid, tokens["bob"], str(local), grid.storage.url(path))
        assert copy.returncode != 0, path
    assert not (alice_area / "evil.root").exists()
    for path in ("/store/user/bob/../../cms/ds/ds_0000.root", "/store/user/bob/../../cms/ds/"):
        assert _https(grid, "GET", path, tokens["bob"]).status_code >= 400, path
        copy = _xrdcp(grid, tokens["bob"], grid.storage.url(path), str(tmp_path / "s.root"))
        assert copy.returncode != 0, path
