"""Dask traffic authenticated per user, with real scheduler and worker processes: a scheduler
with alice's certificate (as the hub makes it, in the settings her pods get) accepts her
workers and clients and refuses plain TCP and bob's certificate itself, whatever the network
lets through (issue 11, rows 8 and 9)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import dask
import pytest
from distributed import Client
from distributed.comm import connect
from distributed.core import rpc
from distributed.security import Security

from analysis_kernels.dask_tls import CERT, KEY, SCHEME
from tests.tls_dask import TLSDask, certificate_dir

pytestmark = pytest.mark.slow


def security(folder: Path) -> Security:
    cert, key = str(folder / CERT), str(folder / KEY)
    roles = {f"tls_{role}_{part}": path for role in ("client", "worker")
             for part, path in (("cert", cert), ("key", key))}  # fmt: skip
    return Security(tls_ca_file=cert, require_encryption=True, **roles)


@pytest.fixture
def alices_cluster(tmp_path):
    alice, bob = certificate_dir(tmp_path, "alice"), certificate_dir(tmp_path, "bob")
    with TLSDask(alice, tmp_path) as address:
        yield {"address": address, "alice": alice, "bob": bob}


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
