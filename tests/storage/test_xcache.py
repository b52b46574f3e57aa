"""An XCache in front of the token-protected storage, real processes: an origin that trusts
the cache's robot credential and reports the bytes it serves (``xrd.report``), and the cache,
which checks each user's token itself."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from analysis_kernels import run
from analysis_kernels.errors import InputError
from hub_config.local.storage import StorageServer
from hub_config.local.xcache import ServiceCredential, SummaryListener, start_cache
from tests.storage.conftest import as_user, same_output

DS = "/store/cms/ds"


@pytest.fixture(scope="module")
def cached_grid(grid, datasets):
    """The grid's IAM and CA, an origin of its own (reporting to a listener) with the ds
    dataset in /store/cms, and a cache in front of it."""
    directory = Path(tempfile.mkdtemp(prefix="facility-xcache-"))
    directory.chmod(0o755)
    robot = ServiceCredential()
    listener = SummaryListener()
    origin = StorageServer(
        directory / "origin",
        issuer=grid.facility.issuer,
        ca=grid.facility.ca,
        services={robot.issuer: robot.jwks()},
        report_port=listener.port,
    )
    origin.publish(datasets["ds"], DS)
    cache = None
    try:
        origin.start()
        cache = start_cache(origin, directory / "xcache", credential=robot.token())
        yield cache, listener
    finally:
        if cache:
            cache.stop()
        origin.stop()
        listener.close()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def tokens(grid) -> dict[str, str]:
    return {user: grid.token(user)["access_token"] for user in ("alice", "bob")}


def _xrdcp(grid, token: str, source: str, target: Path) -> subprocess.CompletedProcess:
    env = os.environ | grid.facility.client_environment() | {"BEARER_TOKEN": token}
    env.pop("BEARER_TOKEN_FILE", None)
    return subprocess.run(
        ["xrdcp", "--force", "--nopbar", source, str(target)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_alice_reads_through_the_cache_and_a_rerun_leaves_the_origin_idle(
    grid, cached_grid, tokens, datasets, tmp_path
):
    cache, listener = cached_grid
    local = run("ds", datasets["ds"], chunk_size=30_000)
    before = listener.settled()
    with as_user(grid, tmp_path / "token", tokens["alice"]):
        first = run("ds", cache.url(DS), chunk_size=30_000)
        first_served = listener.settled() - before
        second = run("ds", cache.url(DS), chunk_size=30_000)
        second_served = listener.settled() - before - first_served
        over_https = run("ds", cache.url(f"{DS}/ds_0000.root", "https"), chunk_size=30_000)
    for report in (first, second):
        assert report.complete and report.events_processed == local.events_total
        same_output(report.output, local.output)
    assert over_https.complete and over_https.events_processed == 60_000
    dataset_bytes = sum(f.stat().st_size for f in datasets["ds"].glob("*.root"))
    cached = sorted(p.name for p in (cache.cached / "store/cms/ds").glob("*.root"))
    assert cached == ["ds_0000.root", "ds_0001.root"]
    # Measured here: 23.83 MB sent by the origin for the 23.81 MB dataset, then 0 bytes.
    assert first_served >= 0.9 * dataset_bytes, (first_served, dataset_bytes)
    assert second_served < 64 * 1024, second_served


def test_bob_is_refused_through_the_cache_a_file_alice_cached(grid, cached_grid, tokens, tmp_path):
    cache, _ = cached_grid
    url = cache.url(f"{DS}/ds_0001.root")
    with as_user(grid, tmp_path / "token", tokens["alice"]):
        run("ds", url)
    assert (cache.cached / "store/cms/ds/ds_0001.root").exists()
    with as_user(grid, tmp_path / "token", tokens["bob"]), pytest.raises(InputError) as refused:
        run("ds", url)
    assert "permission denied for reading /store/cms/ds/ds_0001.root" in str(refused.value)
    copy = _xrdcp(grid, tokens["bob"], url, tmp_path / "stolen.root")
    assert copy.returncode != 0 and "ermission denied" in copy.stderr, copy.stderr
    reply = requests.get(
        cache.url(f"{DS}/ds_0001.root", "https"),
        headers={"Authorization": f"Bearer {tokens['bob']}"},
        verify=str(grid.facility.ca.ca_file),
        timeout=30,
    )
    assert reply.status_code == 403
    assert not (tmp_path / "stolen.root").exists()


def test_the_cache_refuses_an_expired_or_missing_token(grid, cached_grid, tokens, tmp_path):
    """Straight at the cache: the facility's client would refuse an expired token itself.
    The expired token is signed by the IAM's own key (taken from its state), so expiry alone
    is what the cache refuses."""
    cache, _ = cached_grid
    url = cache.url(f"{DS}/ds_0000.root")
    with as_user(grid, tmp_path / "token", tokens["alice"]):
        run("ds", url)
    key_file = grid.facility.state_dir / "secrets" / "idp-keys.json"
    expired = _expired_like(tokens["alice"], key_file)
    copy = _xrdcp(grid, expired, url, tmp_path / "x.root")
    assert copy.returncode != 0 and "Auth failed" in copy.stderr, copy.stderr
    reply = requests.get(
        cache.url(f"{DS}/ds_0000.root", "https"),
        headers={"Authorization": f"Bearer {expired}"},
        verify=str(grid.facility.ca.ca_file),
        timeout=30,
    )
    assert reply.status_code in (401, 403)
    anonymous = requests.get(
        cache.url(f"{DS}/ds_0000.root", "https"), verify=str(grid.facility.ca.ca_file), timeout=30
    )
    assert anonymous.status_code in (401, 403)


def _expired_like(token: str, key_file: Path) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    [key] = json.loads(key_file.read_text())["keys"][:1]
    private = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(key))
    assert isinstance(private, rsa.RSAPrivateKey)
    when = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    claims |= {"exp": int(when.timestamp())}
    return jwt.encode(claims, private, algorithm="RS256", headers={"kid": key["kid"]})
