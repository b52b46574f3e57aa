"""The facility against a real Kubernetes API server (etcd, kube-apiserver, controller manager
and scheduler built from their Go modules, kwok's simulated nodes, as processes on
127.0.0.1), shared by this directory's tests: one control plane, the chart installed once, the
hub's account, alice's and bob's namespaces made by it, and the dask operator running as its
own account."""

from __future__ import annotations

from pathlib import Path

import pytest
from cluster_api import (
    NAMESPACE,
    account_kubeconfig,
    apply_operator_crds,
    create,
    make_hub_account,
    make_tenant,
    release,
)

from charts.cluster.controlplane import ControlPlane
from charts.offline_chart import OPERATOR, copy_chart


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    plane = ControlPlane(tmp_path_factory.mktemp("cluster"), nodes=3).start()
    yield plane
    plane.stop()


@pytest.fixture(scope="session")
def installed(cluster, tmp_path_factory):
    """The dask CRDs applied first (as make upgrade does), then the chart's own templates."""
    apply_operator_crds(cluster)
    # The dask operator subchart comes along; z2jh's chart repository is out of reach here.
    chart = copy_chart(tmp_path_factory.mktemp("chart"), keep=(OPERATOR,))
    install = release(
        cluster,
        "install",
        chart,
        "minimal-values.yaml",
        "--create-namespace",
        "--wait",
    )
    assert install.returncode == 0, install.stderr
    return chart


@pytest.fixture(scope="session")
def hub(cluster, installed) -> str:
    return make_hub_account(cluster)


@pytest.fixture(scope="session")
def users(cluster, hub) -> dict[str, dict]:
    """alice and bob, each with the namespace the hub makes."""
    return {name: make_tenant(cluster, hub, name) for name in ("alice", "bob")}


@pytest.fixture(scope="session")
def operator(cluster, installed, tmp_path_factory):
    """The real dask operator controller (kopf) watching all namespaces, as its chart runs
    it, with its own account's rights (the chart's narrowed RBAC) and one more, for the test
    only: in a cluster the operator reaches schedulers' Services over the pod network; here it
    runs outside it and port-forwards instead (without the right, its timers wait on the
    refused forwards and hold up deletions)."""
    forwarding = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "test-only-operator-port-forward"},
            "rules": [
                {"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["get", "create"]}
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "test-only-operator-port-forward"},
            "subjects": [
                {
                    "kind": "ServiceAccount",
                    "name": "dask-kubernetes-operator",
                    "namespace": NAMESPACE,
                }
            ],
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "test-only-operator-port-forward",
            },
        },
    ]
    granted = create(cluster, {"apiVersion": "v1", "kind": "List", "items": forwarding})
    assert granted.returncode == 0, granted.stderr
    kubeconfig = account_kubeconfig(
        cluster,
        "dask-kubernetes-operator",
        Path(tmp_path_factory.mktemp("operator")) / "operator.kubeconfig",
    )
    return cluster.start_dask_operator(kubeconfig=kubeconfig)
