"""An XCache in front of the token-protected storage, real processes: an origin that trusts
the cache's robot credential and reports the bytes it serves (``xrd.report``), and the cache,
which checks each user's token itself; and the chart's cache (its rendered configuration in
its image, XRootD as that image packages it) in front of the same origin."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
import requests
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa

from analysis_kernels import run
from analysis_kernels.errors import InputError
from analysis_kernels.executor.processes import free_port
from charts.offline_chart import copy_chart
from hub_config.local.storage import StorageServer
from hub_config.local.xcache import CacheServer, ServiceCredential, SummaryListener, start_cache
from tests.outputs import same_output
from tests.storage.conftest import as_user

DS = "/store/cms/ds"


@dataclass
class CachedGrid:
    origin: StorageServer
    cache: CacheServer
    listener: SummaryListener
    robot: ServiceCredential


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
        yield CachedGrid(origin, cache, listener, robot)
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
    cache, listener = cached_grid.cache, cached_grid.listener
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
    cache = cached_grid.cache
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
    cache = cached_grid.cache
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


# The chart's cache: its ConfigMap as helm renders it, run by its image's start script and
# XRootD (chroot into the image's root filesystem, as its user), in front of the origin above.

ROOT = Path(__file__).resolve().parents[2]
XCACHE_UID = 10940


def _rendered_config(origin: StorageServer, ports: tuple[int, int], tmp_path: Path) -> dict:
    chart = copy_chart(tmp_path / "chart")
    values = {
        "xcache": {
            "enabled": True,
            "origin": f"root://127.0.0.1:{origin.port}",
            "issuers": [{"issuer": origin.issuer}],
            "groupAreas": {"cms": "/store/cms"},
            "tlsSecret": "xcache-tls",
            "credentialSecret": "xcache-robot",
            "ram": "1g",
            "ports": {"root": ports[0], "https": ports[1]},
        },
        "jupyterhub": {"custom": {"facility": {"kubernetes": {"xcachePorts": list(ports)}}}},
    }
    (tmp_path / "xcache-values.yaml").write_text(yaml.safe_dump(values))
    helm = Path(sys.executable).parent / "helm"
    assert helm.exists(), f"helm is missing at {helm}: run make install"
    result = subprocess.run(
        [
            str(helm),
            "template",
            "facility",
            str(chart),
            "-f",
            str(chart / "ci" / "minimal-values.yaml"),
            "-f",
            str(tmp_path / "xcache-values.yaml"),
            "--show-only",
            "templates/xcache/configmap.yaml",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["data"]


@contextlib.contextmanager
def _image_root(reference: str):
    """A writable root filesystem of the image (buildah), removed afterwards."""
    for tool in ("buildah", "podman", "mmdebstrap"):
        assert shutil.which(tool), f"{tool} is missing: make images installs it"
    subprocess.run(
        [sys.executable, "images/build.py", "xcache"], cwd=ROOT, check=True, timeout=1800
    )
    container = subprocess.run(
        ["buildah", "from", reference], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        mount = subprocess.run(
            ["buildah", "mount", container], capture_output=True, text=True, check=True
        ).stdout.strip()
        yield Path(mount)
    finally:
        subprocess.run(["buildah", "umount", container], capture_output=True)
        subprocess.run(["buildah", "rm", container], capture_output=True, check=True)


def _install(path: Path, data: bytes, mode: int, uid: int = 0, gid: int = XCACHE_UID) -> None:
    """A file as a Secret or ConfigMap mount gives it (root's, the pod's group may read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    os.chown(path, uid, gid)


@pytest.mark.slow
def test_the_charts_cache_in_its_image_serves_alice_and_refuses_bob(
    grid, cached_grid, tokens, tmp_path
):
    """What the chart runs, short of Kubernetes: the rendered ConfigMap in the image's paths,
    the Secrets' files as mounts give them, the image's start script as the image's user. The
    image fetches the IAM's keys itself over HTTPS (the test CA added to its system store, as a
    real IAM's is there already)."""
    assert os.geteuid() == 0, "chroot into the image's root filesystem needs root"
    image = yaml.safe_load((ROOT / "charts/analysis-facility/values.yaml").read_text())
    reference = "{name}:{tag}".format(**image["xcache"]["image"])
    ca = grid.facility.ca
    cert, key = ca.issue("chart-xcache")
    with _image_root(reference) as root:
        # Picked after the image build: less time for the other test worker to take them.
        ports = (free_port(), free_port())
        config = _rendered_config(cached_grid.origin, ports, tmp_path)
        for name, text in config.items():
            _install(root / "etc/xcache/config" / name, text.encode(), 0o644)
        _install(root / "etc/xcache/tls/tls.crt", cert.read_bytes(), 0o440)
        _install(root / "etc/xcache/tls/tls.key", key.read_bytes(), 0o440)
        _install(root / "etc/xcache/credential/token", cached_grid.robot.token().encode(), 0o440)
        for folder in ("var/run/xrootd", "data/xcache"):
            (root / folder).mkdir(parents=True, exist_ok=True)
            os.chown(root / folder, XCACHE_UID, XCACHE_UID)
        digest = subprocess.run(
            ["openssl", "x509", "-hash", "-noout", "-in", str(ca.ca_file)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        shutil.copy(ca.ca_file, root / "etc/ssl/certs" / f"{digest}.0")
        with open(root / "etc/ssl/certs/ca-certificates.crt", "a") as bundle:
            bundle.write(ca.ca_file.read_text())
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "XCACHE_CREDENTIAL": "/etc/xcache/credential/token",
            "XCACHE_TLS": "/etc/xcache/tls",
            "BEARER_TOKEN_FILE": "/var/run/xrootd/token",
            "X509_CERT_DIR": "/etc/ssl/certs",
            "XDG_CACHE_HOME": "/var/run/xrootd/cache",
        }
        log = tmp_path / "xcache.log"
        with open(log, "w") as out:
            server = subprocess.Popen(
                [
                    "chroot",
                    f"--userspec={XCACHE_UID}:{XCACHE_UID}",
                    str(root),
                    "/usr/local/bin/xcache-start",
                ],
                env=env,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        try:
            _wait_for_port(ports[1], server, log)
            urls = {
                "root": f"root://127.0.0.1:{ports[0]}/{DS}/ds_0000.root",
                "https": f"https://127.0.0.1:{ports[1]}{DS}/ds_0000.root",
            }
            for url in urls.values():
                with as_user(grid, tmp_path / "token", tokens["alice"]):
                    report = run("ds", url)
                assert report.complete and report.events_processed == 60_000, url
                with (
                    as_user(grid, tmp_path / "token", tokens["bob"]),
                    pytest.raises(InputError, match="permission denied for reading"),
                ):
                    run("ds", url)
            assert (root / "data/xcache/store/cms/ds/ds_0000.root").exists()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def _wait_for_port(port: int, server: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the chart's cache exited: {log.read_text()[-3000:]}"
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.3)
    raise AssertionError(f"the chart's cache did not listen on {port}: {log.read_text()[-3000:]}")
