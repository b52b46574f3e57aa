"""The facility installed on a kind cluster (make kind-smoke): a user logs in through the
development IAM, spawns a server with KubeSpawner, creates a Dask cluster from it through the
dask operator, runs the Ds analysis, and gets the serial result; another user cannot reach
that cluster's scheduler. Collected only by make kind-smoke (FACILITY_KIND_SMOKE=1)."""

from __future__ import annotations

import ast
import os

import pytest

from hub_config.local.client import HubUser

URL = os.environ.get("FACILITY_URL", "http://127.0.0.1:8000")

RUN_DS = """
import os
from distributed import Client
from analysis_kernels.clusters import facility_cluster
from analysis_kernels.executor import run
data = os.path.join(os.environ["FACILITY_SAMPLE_DATA"], "ds")
cluster = facility_cluster()
cluster.scale(2)
client = Client(cluster)
client.wait_for_workers(2, timeout=600)
distributed = run("ds", data, executor=client).output["mass"].values().tolist()
serial = run("ds", data, executor="serial").output["mass"].values().tolist()
print(repr({"equal": distributed == serial, "entries": sum(serial),
            "scheduler": cluster.scheduler_address}))
"""

PROBE = """
import socket
host, port = {address!r}.removeprefix("tcp://").rsplit(":", 1)
try:
    socket.create_connection((host, int(port)), timeout=10).close()
    print("reached")
except OSError as err:
    print("blocked", type(err).__name__)
"""


@pytest.fixture(scope="module")
def alice_run():
    alice = HubUser(URL, "alice", "alice-pw").login()
    alice.new_token()
    server = alice.start_server(timeout=900)
    return ast.literal_eval(alice.run_code(server, RUN_DS, timeout=1200).strip())


def test_ds_on_a_kubecluster_equals_the_serial_run(alice_run):
    assert alice_run["equal"] and alice_run["entries"] > 0


def test_another_user_cannot_reach_the_scheduler(alice_run):
    bob = HubUser(URL, "bob", "bob-pw").login()
    bob.new_token()
    server = bob.start_server(timeout=900)
    output = bob.run_code(server, PROBE.format(address=alice_run["scheduler"])).strip()
    assert output.startswith("blocked"), output
