"""One cluster for the notebook and the Dask sidebar, through a real Jupyter server's sidebar API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error

import pytest

from analysis_kernels.executor.processes import free_port, stop_in_reverse
from analysis_kernels.session import _sidebar_api, jupyter_server, user_client

pytestmark = pytest.mark.slow


def _start_server(root, runtime) -> tuple[subprocess.Popen, dict]:
    """``jupyter server`` with dask-labextension and the facility's factory, as the hub sets it."""
    from jupyter_server.serverapp import list_running_servers

    env = os.environ | {
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "DASK_LABEXTENSION__FACTORY__MODULE": "analysis_kernels.clusters",
        "DASK_LABEXTENSION__FACTORY__CLASS": "facility_cluster",
        "CPU_LIMIT": "1",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={free_port()}",
            "--IdentityProvider.token=secret-test-token",
            f"--ServerApp.root_dir={root}",
            "--allow-root",  # the test machine runs as root; a no-op otherwise
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        servers = [s for s in list_running_servers(str(runtime)) if s["pid"] == process.pid]
        if servers and _answers(servers[0]):
            return process, servers[0]
        assert process.poll() is None, "jupyter server exited"
        time.sleep(0.3)
    stop_in_reverse([process], 10)
    raise AssertionError("jupyter server did not start")


def _answers(server: dict) -> bool:
    """The runtime file appears before the server serves: wait for the sidebar's API."""
    try:
        _sidebar_api(server)
    except urllib.error.URLError:
        return False
    return True


def test_notebook_and_sidebar_share_one_cluster_across_a_server_restart(tmp_path):
    runtime = tmp_path / "runtime"
    process, server = _start_server(tmp_path, runtime)
    try:
        assert _sidebar_api(server) == []
        # The sidebar's NEW first: the notebook gets that cluster, and makes no second one.
        made = _sidebar_api(server, "PUT")
        with user_client(server) as client:
            assert client.scheduler.address == made["scheduler_address"]
            assert client.submit(sum, [1, 2]).result() == 3
        assert len(_sidebar_api(server)) == 1
    finally:
        stop_in_reverse([process], 20)
    # The server restarts: the notebook's same cell gets the new server's cluster, which the
    # sidebar lists, instead of timing out on the old address.
    process, server = _start_server(tmp_path, runtime)
    try:
        with user_client(server) as client:
            assert client.scheduler.address != made["scheduler_address"]
            assert client.submit(sum, [3, 4]).result() == 7
            listed = _sidebar_api(server)
            assert [c["scheduler_address"] for c in listed] == [client.scheduler.address]
    finally:
        stop_in_reverse([process], 20)


def test_outside_a_jupyter_server_there_is_no_sidebar():
    assert jupyter_server() is None
