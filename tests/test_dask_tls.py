"""Dask traffic authenticated per user, with real scheduler and worker processes: a scheduler
with alice's certificate (as the hub makes it, in the settings her pods get) accepts her
workers and clients and refuses plain TCP and bob's certificate itself, whatever the network
lets through (issue 11, rows 8 and 9)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dask
import pytest
from distributed import Client
from distributed.comm import connect
from distributed.core import rpc
from distributed.security import Security

from analysis_kernels.dask_tls import CERT, KEY, SCHEME, tls_environment, user_certificate

pytestmark = pytest.mark.slow
DASK = Path(sys.executable).parent / "dask"


def certificate_dir(root: Path, owner: str) -> Path:
    folder = root / owner
    folder.mkdir()
    for name, text in user_certificate(owner).items():
        (folder / name).write_text(text)
        (folder / name).chmod(0o600)
    return folder


def security(folder: Path) -> Security:
    cert, key = str(folder / CERT), str(folder / KEY)
    roles = {f"tls_{role}_{part}": path for role in ("client", "worker")
             for part, path in (("cert", cert), ("key", key))}  # fmt: skip
    return Security(tls_ca_file=cert, require_encryption=True, **roles)


@pytest.fixture
def alices_cluster(tmp_path):
    """A scheduler and a worker as alice's Dask pods run them: TLS settings from the
    environment, scheduler listening on tls:// only."""
    alice, bob = certificate_dir(tmp_path, "alice"), certificate_dir(tmp_path, "bob")
    env = os.environ | tls_environment(str(alice))
    scheduler_file = tmp_path / "scheduler.json"
    processes = [
        subprocess.Popen(
            [
                DASK,
                "scheduler",
                "--protocol",
                "tls",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.2)
        time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        processes.append(
            subprocess.Popen(
                [DASK, "worker", address, "--nthreads", "1", "--no-dashboard"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        yield {"address": address, "alice": alice, "bob": bob}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def test_the_owner_computes_over_tls(alices_cluster):
    assert alices_cluster["address"].startswith("tls://")
    with Client(alices_cluster["address"], security=security(alices_cluster["alice"])) as client:
        client.wait_for_workers(1, timeout=60)
        assert client.submit(sum, [1, 2, 3]).result(timeout=60) == 6


def test_plain_tcp_and_another_users_certificate_are_refused(alices_cluster):
    host_port = alices_cluster["address"].removeprefix("tls://")

    async def attempt(address: str, **connection_args):
        comm = await connect(address, timeout=5, **connection_args)
        await comm.close()

    with pytest.raises((OSError, asyncio.TimeoutError)):
        asyncio.run(attempt(f"tcp://{host_port}"))
    bobs = security(alices_cluster["bob"])
    for role in ("client", "worker"):
        with pytest.raises((OSError, asyncio.TimeoutError)):
            asyncio.run(attempt(alices_cluster["address"], **bobs.get_connection_args(role)))


def test_the_facility_scheme_takes_the_certificate_from_dask_config(alices_cluster):
    """What dask-kubernetes' own connections use: no TLS arguments, the user's settings."""
    address = alices_cluster["address"].replace("tls://", f"{SCHEME}://")

    async def versions():
        async with rpc(address, timeout=5) as scheduler:
            return await scheduler.versions()

    with dask.config.set(tls_config(alices_cluster["alice"])):
        assert "packages" in asyncio.run(versions())
    with (
        dask.config.set(tls_config(alices_cluster["bob"])),
        pytest.raises((OSError, asyncio.TimeoutError)),
    ):
        asyncio.run(versions())


def tls_config(folder: Path) -> dict:
    cert, key = str(folder / CERT), str(folder / KEY)
    return {
        "distributed.comm.require-encryption": True,
        "distributed.comm.tls.ca-file": cert,
        "distributed.comm.tls.client.cert": cert,
        "distributed.comm.tls.client.key": key,
    }
