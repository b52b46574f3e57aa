"""A user's Dask cluster made by the real dask operator, from Python as the user would make it."""

from __future__ import annotations

import json

import dask
import pytest
from cluster_api import account_kubeconfig, create, pods, running, wait_for
from distributed import Client

from analysis_kernels.clusters import (
    CONTAINER_SECURITY,
    OWNER_LABEL,
    POD_SECURITY,
    facility_cluster,
    kube_cluster_spec,
)
from analysis_kernels.dask_tls import SCHEME, tls_environment
from tests.tls_dask import TLSDask, certificate_dir

pytestmark = pytest.mark.slow


@pytest.fixture
def alice_server(cluster, users, tmp_path, monkeypatch):
    """What alice's notebook server would have: a pod in her namespace, her account's token as
    kubeconfig, the FACILITY_* environment the hub gives it, and Dask's TLS settings pointing
    at her certificate."""
    alice = users["alice"]
    namespace = alice["namespace"]
    server = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "jupyter-alice", "labels": {OWNER_LABEL: "alice"}},
        "spec": {
            "serviceAccountName": "facility-user",
            "securityContext": POD_SECURITY,
            "containers": [
                {"name": "notebook", "image": "analysis:1", "securityContext": CONTAINER_SECURITY}
            ],
        },
    }
    created = create(cluster, server, namespace=namespace)
    assert created.returncode == 0, created.stderr
    pod = json.loads(
        cluster.kubectl("get", "pod", "jupyter-alice", "-n", namespace, "-o", "json").stdout
    )
    kubeconfig = account_kubeconfig(
        cluster, "facility-user", tmp_path / "alice.kubeconfig", namespace=namespace
    )
    folder = certificate_dir(tmp_path, "alice", alice["certificate"])
    environment = tls_environment(str(folder)) | {
        "KUBECONFIG": str(kubeconfig),
        "FACILITY_CLUSTER_BACKEND": "kubernetes",
        "FACILITY_DASK_CLUSTER_NAME": "dask-alice",
        "FACILITY_DASK_IMAGE": "analysis:1",
        "FACILITY_DASK_NAMESPACE": namespace,
        "FACILITY_TOKEN_SECRET": "iam-token",
        "FACILITY_TOKEN_MOUNT": "/var/run/secrets/facility",
        "FACILITY_DASK_TLS_SECRET": "dask-tls",
        "FACILITY_POD_NAME": "jupyter-alice",
        "FACILITY_POD_UID": pod["metadata"]["uid"],
        "FACILITY_OWNER": "alice",
        "BEARER_TOKEN_FILE": "/var/run/secrets/facility/bearer_token",
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    dask.config.refresh()
    yield {"pod": pod, "namespace": namespace, "certificate": folder}
    for key in environment:
        monkeypatch.delenv(key)
    dask.config.refresh()
    cluster.kubectl(
        "delete", "pod", "jupyter-alice", "-n", namespace,
        "--ignore-not-found", "--grace-period=0", "--force",
    )  # fmt: skip


@pytest.fixture
def scheduler_stand_in(cluster, alice_server, tmp_path):
    """kwok runs no containers, so a real Dask scheduler and worker on 127.0.0.1, with alice's
    certificate and TLS only, stand in for what her scheduler pod would run: port forwards to
    port 8786 of her namespace's pods reach them, through the API server and kwok's kubelet.

    A user's server reaches its scheduler's Service over the pod network; this test runs
    outside it, so KubeCluster port-forwards instead, and alice's account gets that one right
    for the test only. Users never have it (the isolation tests check that they do not)."""
    namespace = alice_server["namespace"]
    with TLSDask(alice_server["certificate"], tmp_path) as address:
        cluster.forward(namespace, 8786, int(address.rsplit(":", 1)[1]))
        forwarding = [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "test-only-port-forward"},
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["pods/portforward"],
                        "verbs": ["get", "create"],
                    }
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "test-only-port-forward"},
                "subjects": [
                    {"kind": "ServiceAccount", "name": "facility-user", "namespace": namespace}
                ],
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "test-only-port-forward",
                },
            },
        ]
        listed = {"apiVersion": "v1", "kind": "List", "items": forwarding}
        granted = create(cluster, listed, namespace=namespace)
        assert granted.returncode == 0, granted.stderr
        yield address
        cluster.kubectl("delete", "rolebinding,role", "test-only-port-forward", "-n", namespace)


def test_kube_cluster_from_python_as_the_user_is_made_scaled_and_deleted_by_the_operator(
    cluster, operator, alice_server, scheduler_stand_in
):
    """The facility's own factory (what the JupyterLab sidebar calls) with alice's account and
    environment: the real operator makes the scheduler and worker deployments, pods and service;
    the client computes over TLS with her certificate through the API server's port forward;
    scaling and closing work with nothing but her own rights, in her own namespace."""
    namespace = alice_server["namespace"]
    # Outside the cluster network the scheduler's service name does not resolve.
    dask_cluster = facility_cluster(port_forward_cluster_ip=True)
    selector = "dask.org/cluster-name=dask-alice"
    try:
        dask_cluster.scale(2)
        workers = wait_for(
            lambda: running(pods(cluster, selector + ",dask.org/component=worker", namespace), 2),
            "two running worker pods",
        )
        scheduler = running(pods(cluster, selector + ",dask.org/component=scheduler", namespace), 1)
        assert scheduler, "the scheduler pod runs (KubeCluster waited for it)"
        for pod in workers + scheduler:
            assert pod["metadata"]["labels"][OWNER_LABEL] == "alice"
            container = pod["spec"]["containers"][0]
            assert container["image"] == "analysis:1"
            assert {
                "name": "iam-token",
                "mountPath": "/var/run/secrets/facility",
                "readOnly": True,
            } in container["volumeMounts"]
            assert pod["spec"]["serviceAccountName"] == "default"
            assert pod["spec"]["automountServiceAccountToken"] is False
        made = json.loads(
            cluster.kubectl(
                "get", "daskcluster", "dask-alice", "-n", namespace, "-o", "json"
            ).stdout
        )
        assert (
            made["metadata"]["ownerReferences"][0]["uid"] == alice_server["pod"]["metadata"]["uid"]
        )
        deployments = cluster.kubectl(
            "get", "deployments", "-n", namespace, "-l", selector, "-o", "name"
        )
        assert "deployment.apps/dask-alice-scheduler" in deployments.stdout.split()
        service = cluster.kubectl("get", "service", "dask-alice-scheduler", "-n", namespace)
        assert service.returncode == 0, service.stderr

        assert dask_cluster.scheduler_address.startswith(f"{SCHEME}://")
        with Client(dask_cluster) as client:
            assert client.submit(sum, [1, 2, 3]).result(timeout=60) == 6

        dask_cluster.adapt(minimum=1, maximum=3)  # the sidebar's adapt does the same
        autoscaler = cluster.kubectl("get", "daskautoscaler", "dask-alice", "-n", namespace)
        assert autoscaler.returncode == 0, autoscaler.stderr
        dask_cluster.scale(3)  # and its scale; this also ends adapting
        wait_for(
            lambda: running(pods(cluster, selector + ",dask.org/component=worker", namespace), 3),
            "three workers",
        )
        wait_for(  # the operator's finalizer goes first
            lambda: (
                cluster.kubectl("get", "daskautoscaler", "dask-alice", "-n", namespace).returncode
                != 0
            ),
            "the autoscaler deleted by scale()",
        )
    finally:
        dask_cluster.close(timeout=120)
    gone = cluster.kubectl("get", "daskcluster", "dask-alice", "-n", namespace)
    assert gone.returncode != 0, "close() deletes the DaskCluster"
    wait_for(lambda: not pods(cluster, selector, namespace), "the cluster's pods deleted")


def test_the_users_cluster_is_deleted_with_the_users_server(cluster, users, operator, alice_server):
    namespace = alice_server["namespace"]
    spec = kube_cluster_spec()
    made = create(cluster, spec, user=users["alice"]["account"], namespace=namespace)
    assert made.returncode == 0, made.stderr
    wait_for(
        lambda: pods(
            cluster, "dask.org/cluster-name=dask-alice,dask.org/component=scheduler", namespace
        ),
        "the scheduler pod",
    )
    gone = cluster.kubectl(
        "delete",
        "pod",
        "jupyter-alice",
        "-n",
        namespace,
        "--wait=false",
        "--grace-period=0",
        "--force",
    )
    assert gone.returncode == 0, gone.stderr
    wait_for(
        lambda: (
            cluster.kubectl("get", "daskcluster", "dask-alice", "-n", namespace).returncode != 0
        ),
        "the cluster deleted with its owner's server",
    )
    wait_for(
        lambda: not pods(cluster, "dask.org/cluster-name=dask-alice", namespace),
        "the cluster's pods deleted",
    )
