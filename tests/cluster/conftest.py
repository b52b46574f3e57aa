"""The facility against a real Kubernetes API server (etcd, kube-apiserver, controller manager
and scheduler built from their Go modules, kwok's simulated nodes, as processes on
127.0.0.1), shared by this directory's tests: one control plane, the chart installed once."""

from __future__ import annotations

import time

import pytest
from cluster_api import NAMESPACE, OPERATOR_LABELS, account, create, release

from charts.cluster.controlplane import ControlPlane
from charts.offline_chart import OPERATOR, OPERATOR_CHART, copy_chart
from hub_config.kube import user_objects

CRDS = OPERATOR_CHART / "crds"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    plane = ControlPlane(tmp_path_factory.mktemp("cluster"), nodes=3).start()
    yield plane
    plane.stop()


@pytest.fixture(scope="session")
def installed(cluster, tmp_path_factory):
    """The dask CRDs applied first (as make upgrade does), then the chart's own templates."""
    applied = cluster.kubectl("apply", "--server-side", "-f", str(CRDS))
    assert applied.returncode == 0, applied.stderr
    deadline = time.monotonic() + 60
    while True:  # kubectl wait errs while a new CRD has no status yet
        ready = cluster.kubectl(
            "wait",
            "--for=condition=established",
            "--timeout=30s",
            "crd/daskclusters.kubernetes.dask.org",
            "crd/daskworkergroups.kubernetes.dask.org",
        )
        if ready.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert ready.returncode == 0, ready.stderr
    # The dask operator subchart comes along; z2jh's chart repository is out of reach here.
    chart = copy_chart(tmp_path_factory.mktemp("chart"), keep=(OPERATOR,))
    install = release(
        cluster, "install", chart, "minimal-values.yaml", "--create-namespace", "--wait"
    )
    assert install.returncode == 0, install.stderr
    return chart


@pytest.fixture(scope="session")
def users(cluster, installed):
    """alice and bob set up by the hub's own account, as FacilityKubeSpawner does at spawn."""
    for name in ("alice", "bob"):
        manifests = user_objects(NAMESPACE, name, "analysis-facility-user", OPERATOR_LABELS)
        listed = {"apiVersion": "v1", "kind": "List", "items": manifests}
        created = create(cluster, listed, user=account("hub"))
        assert created.returncode == 0, created.stderr
    return {"alice": account("user-alice"), "bob": account("user-bob")}


@pytest.fixture(scope="session")
def operator(cluster, installed):
    """The real dask operator controller (kopf), against this API server."""
    return cluster.start_dask_operator(NAMESPACE)
