"""Tenant isolation asked of the API server itself: what each account may do (RBAC), and the
admission policy on what users create."""

from __future__ import annotations

import json

import pytest
from cluster_api import NAMESPACE, account, create

from analysis_kernels.clusters import OWNER_LABEL

pytestmark = pytest.mark.slow


def can(cluster, user: str, verb: str, resource: str) -> bool:
    answer = cluster.kubectl("auth", "can-i", verb, resource, "-n", NAMESPACE, user=user)
    return answer.stdout.strip() == "yes"


DASK = "daskclusters.kubernetes.dask.org"


def test_rbac_matrix(cluster, users):
    alice = users["alice"]
    assert can(cluster, alice, "create", DASK)
    for verb in ("get", "list", "watch", "patch", "delete"):
        assert can(cluster, alice, verb, f"{DASK}/dask-alice"), verb
        assert not can(cluster, alice, verb, f"{DASK}/dask-bob"), verb
    assert can(cluster, alice, "patch", "daskworkergroups.kubernetes.dask.org/dask-alice-default")
    assert not can(cluster, alice, "patch", "daskworkergroups.kubernetes.dask.org/dask-bob-default")
    assert can(cluster, alice, "get", "pods/log")
    for verb, resource in [
        ("list", DASK),  # all clusters, not only her own
        ("get", "secrets"),
        ("list", "secrets"),
        ("create", "pods"),
        ("delete", "pods"),
        ("create", "pods/portforward"),  # would pass around the NetworkPolicies
        ("create", "pods/exec"),
        ("create", "daskjobs.kubernetes.dask.org"),
        ("create", "rolebindings"),
        ("delete", "networkpolicies"),
        ("create", "serviceaccounts"),
    ]:
        assert not can(cluster, alice, verb, resource), (verb, resource)
    hub = account("hub")
    assert can(cluster, hub, "update", "secrets")
    assert can(cluster, hub, "create", "serviceaccounts")
    assert can(cluster, hub, "create", "roles")
    for verb, resource in [
        ("delete", "serviceaccounts"),
        ("create", "clusterroles"),
        ("create", "clusterrolebindings"),
        ("escalate", "roles"),
        ("delete", "networkpolicies"),
    ]:
        assert not can(cluster, hub, verb, resource), (verb, resource)


def dask_cluster(name: str, owner: str, worker_labels: dict | None = None) -> str:
    worker = {"replicas": 0, "spec": {"containers": [{"name": "worker", "image": "analysis:1"}]}}
    if worker_labels:
        worker["metadata"] = {"labels": worker_labels}
    return json.dumps(
        {
            "apiVersion": "kubernetes.dask.org/v1",
            "kind": "DaskCluster",
            "metadata": {"name": name, "labels": {OWNER_LABEL: owner}},
            "spec": {
                "worker": worker,
                "scheduler": {
                    "spec": {"containers": [{"name": "scheduler", "image": "analysis:1"}]},
                    "service": {
                        "selector": {"dask.org/cluster-name": name},
                        "ports": [{"name": "tcp-comm", "port": 8786}],
                    },
                },
            },
        }
    )


def test_a_user_sees_and_touches_only_their_own_dask_cluster(cluster, users):
    alice, bob = users["alice"], users["bob"]
    refused = {
        "another name": (
            dask_cluster("dask-fake", "alice"),
            "may only have the daskclusters named dask-alice",
        ),
        "bob's label": (
            dask_cluster("dask-alice", "bob"),
            f"must label Dask objects, and their pods, {OWNER_LABEL}=alice",
        ),
        # Worker pods labelled as bob's would pass bob's NetworkPolicy to his scheduler.
        "bob's label on the workers": (
            dask_cluster("dask-alice", "alice", {OWNER_LABEL: "bob"}),
            f"{OWNER_LABEL}=alice",
        ),
    }
    for what, (manifest, message) in refused.items():
        result = create(cluster, manifest, user=alice)
        assert result.returncode != 0 and message in result.stderr, (what, result.stderr)
    own = create(cluster, dask_cluster("dask-alice", "alice"), user=alice)
    assert own.returncode == 0, own.stderr
    theirs = create(cluster, dask_cluster("dask-bob", "bob"), user=bob)
    assert theirs.returncode == 0, theirs.stderr
    for attempt in (
        ["get", "daskcluster", "dask-bob"],
        ["get", "daskclusters"],
        ["get", "daskclusters", "--field-selector", "metadata.name=dask-bob", "--watch=false"],
        ["delete", "daskcluster", "dask-bob"],
        ["label", "--overwrite", "daskcluster", "dask-bob", f"{OWNER_LABEL}=alice"],
        [
            "patch",
            "daskcluster",
            "dask-bob",
            "--type=merge",
            "-p",
            '{"spec": {"worker": {"replicas": 5}}}',
        ],
    ):
        result = cluster.kubectl(*attempt, "-n", NAMESPACE, user=alice)
        assert result.returncode != 0 and "forbidden" in result.stderr, attempt
    mine = cluster.kubectl("get", "daskcluster", "dask-alice", "-n", NAMESPACE, user=alice)
    assert mine.returncode == 0, mine.stderr
    relabel = cluster.kubectl(
        "label",
        "--overwrite",
        "daskcluster",
        "dask-alice",
        f"{OWNER_LABEL}=bob",
        "-n",
        NAMESPACE,
        user=alice,
    )
    assert relabel.returncode != 0 and "must label" in relabel.stderr, (
        "alice handed her cluster to bob"
    )
    for name, user in (("dask-alice", alice), ("dask-bob", bob)):
        deleted = cluster.kubectl("delete", "daskcluster", name, "-n", NAMESPACE, user=user)
        assert deleted.returncode == 0, deleted.stderr
