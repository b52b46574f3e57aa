"""The chart against a real Kubernetes API server (etcd, kube-apiserver, controller manager and
scheduler built from k8s.io/kubernetes, as processes on 127.0.0.1): installed and upgraded,
and the tenant-isolation rules asked of the API server itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis_kernels.clusters import kube_cluster_spec
from charts.cluster.controlplane import ControlPlane
from charts.offline_chart import OPERATOR, OPERATOR_CHART, copy_chart
from hub_config.kube import user_objects

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
CRDS = OPERATOR_CHART / "crds"
NAMESPACE = "analysis"
OPERATOR_LABELS = {"app.kubernetes.io/name": "dask-kubernetes-operator"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    plane = ControlPlane(tmp_path_factory.mktemp("cluster"), nodes=3).start()
    yield plane
    plane.stop()


def create(cluster, manifest: dict | str, user: str | None = None):
    """``kubectl create`` of one manifest (or a List) in the test namespace."""
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    return cluster.kubectl("create", "-n", NAMESPACE, "-f", "-", stdin=text, user=user)


def helm(cluster, *args):
    command = [str(BIN / "helm"), "--kubeconfig", str(cluster.kubeconfig), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def release(cluster, verb: str, chart: Path, values: str, *extra: str):
    """``helm <verb>`` of the release ``facility`` in the test namespace, with a ci values file."""
    ci_values = str(chart / "ci" / values)
    return helm(cluster, verb, "facility", str(chart), "-n", NAMESPACE, "-f", ci_values, *extra)


def account(name: str) -> str:
    return f"system:serviceaccount:{NAMESPACE}:{name}"


@pytest.fixture(scope="module")
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


def test_every_rendered_object_passes_strict_server_side_validation(cluster, installed):
    rendered = release(
        cluster,
        "template",
        installed,
        "production-values.yaml",
        "--skip-tests",  # helm test objects exist only while a test runs
    )
    assert rendered.returncode == 0, rendered.stderr
    checked = cluster.kubectl(
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "-n",
        NAMESPACE,
        "-f",
        "-",
        stdin=rendered.stdout,
    )
    assert checked.returncode == 0, checked.stderr
    assert "dask-kubernetes-operator" in checked.stdout  # the subchart's objects too


def test_install_and_upgrade_are_accepted_by_the_api_server(cluster, installed):
    upgrade = release(cluster, "upgrade", installed, "production-values.yaml", "--wait")
    assert upgrade.returncode == 0, upgrade.stderr
    status = json.loads(helm(cluster, "status", "facility", "-n", NAMESPACE, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed" and status["version"] == 2
    kept = cluster.kubectl("get", "secret", "analysis-facility-iam", "-n", NAMESPACE)
    assert kept.returncode == 0, "the IAM secret of the first install was deleted by the upgrade"
    quota = json.loads(
        cluster.kubectl(
            "get", "resourcequota", "analysis-facility", "-n", NAMESPACE, "-o", "json"
        ).stdout
    )
    assert quota["spec"]["hard"]["limits.cpu"] == "1k"  # 1000, as the API server writes it


@pytest.fixture(scope="module")
def users(cluster, installed):
    """alice and bob set up by the hub's own account, as FacilityKubeSpawner does at spawn."""
    for name in ("alice", "bob"):
        manifests = user_objects(NAMESPACE, name, "analysis-facility-user", OPERATOR_LABELS)
        listed = {"apiVersion": "v1", "kind": "List", "items": manifests}
        created = create(cluster, listed, user=account("hub"))
        assert created.returncode == 0, created.stderr
    return {"alice": account("user-alice"), "bob": account("user-bob")}


def can(cluster, user: str, verb: str, resource: str) -> bool:
    answer = cluster.kubectl("auth", "can-i", verb, resource, "-n", NAMESPACE, user=user)
    return answer.stdout.strip() == "yes"


def test_rbac_matrix(cluster, users):
    alice = users["alice"]
    for verb in ("create", "get", "patch", "delete"):
        assert can(cluster, alice, verb, "daskclusters.kubernetes.dask.org")
    assert can(cluster, alice, "get", "pods/log")
    for verb, resource in [
        ("get", "secrets"),
        ("list", "secrets"),
        ("create", "pods"),
        ("delete", "pods"),
        ("create", "rolebindings"),
        ("delete", "networkpolicies"),
        ("create", "serviceaccounts"),
    ]:
        assert not can(cluster, alice, verb, resource), (verb, resource)
    hub = account("hub")
    assert can(cluster, hub, "update", "secrets")
    assert can(cluster, hub, "create", "serviceaccounts")
    for verb, resource in [
        ("delete", "serviceaccounts"),
        ("create", "roles"),
        ("create", "clusterrolebindings"),
        ("delete", "networkpolicies"),
    ]:
        assert not can(cluster, hub, verb, resource), (verb, resource)


def dask_cluster(name: str, owner: str) -> str:
    return json.dumps(
        {
            "apiVersion": "kubernetes.dask.org/v1",
            "kind": "DaskCluster",
            "metadata": {"name": name, "labels": {"hub.jupyter.org/username": owner}},
            "spec": {
                "worker": {
                    "replicas": 0,
                    "spec": {"containers": [{"name": "worker", "image": "analysis:1"}]},
                },
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


def test_a_user_touches_only_their_own_dask_clusters(cluster, users):
    alice, bob = users["alice"], users["bob"]
    own = create(cluster, dask_cluster("dask-alice", "alice"), user=alice)
    assert own.returncode == 0, own.stderr
    disguised = create(cluster, dask_cluster("dask-fake", "bob"), user=alice)
    assert disguised.returncode != 0
    assert (
        "may only create, change or delete Dask objects labelled hub.jupyter.org/username=alice"
        in disguised.stderr
    )
    theirs = create(cluster, dask_cluster("dask-bob", "bob"), user=bob)
    assert theirs.returncode == 0, theirs.stderr
    for attempt in (
        ["delete", "daskcluster", "dask-bob"],
        ["label", "--overwrite", "daskcluster", "dask-bob", "hub.jupyter.org/username=alice"],
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
        assert result.returncode != 0 and "may only" in result.stderr, attempt
    relabel = cluster.kubectl(
        "label",
        "--overwrite",
        "daskcluster",
        "dask-alice",
        "hub.jupyter.org/username=bob",
        "-n",
        NAMESPACE,
        user=alice,
    )
    assert relabel.returncode != 0, "alice handed her cluster to bob"
    assert (
        cluster.kubectl(
            "delete", "daskcluster", "dask-alice", "-n", NAMESPACE, user=alice
        ).returncode
        == 0
    )


def test_containers_beyond_the_limits_are_refused(cluster, installed):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "greedy"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "analysis:1",
                    "resources": {"limits": {"cpu": "64", "memory": "1Gi"}},
                }
            ]
        },
    }
    result = create(cluster, pod)
    assert result.returncode != 0
    assert "maximum cpu usage per Container is 16" in result.stderr


@pytest.fixture(scope="module")
def operator(cluster, installed):
    """The real dask operator controller (kopf), against this API server."""
    log = open(cluster.logs / "dask-operator.log", "ab")  # noqa: SIM115 - the process owns it
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kopf",
            "run",
            "--standalone",
            "--namespace",
            NAMESPACE,
            "-m",
            "dask_kubernetes.operator.controller",
        ],
        env=os.environ | {"KUBECONFIG": str(cluster.kubeconfig)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield process
    process.terminate()
    process.wait(timeout=30)


def wait_for(check, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s"
        time.sleep(1)


def pods(cluster, selector: str) -> list[dict]:
    listed = cluster.kubectl("get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "json")
    return json.loads(listed.stdout)["items"] if listed.returncode == 0 else []


def running(items: list[dict], count: int) -> list[dict] | None:
    live = [p for p in items if p["status"].get("phase") == "Running"]
    return live if len(live) == count else None


def test_operator_makes_the_users_cluster_scales_it_and_removes_it_with_the_server(
    cluster, users, operator
):
    server = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "jupyter-alice",
            "labels": {"hub.jupyter.org/username": "alice", "component": "singleuser-server"},
        },
        "spec": {"containers": [{"name": "notebook", "image": "analysis:1"}]},
    }
    created = create(cluster, server)
    assert created.returncode == 0, created.stderr
    uid = json.loads(
        cluster.kubectl("get", "pod", "jupyter-alice", "-n", NAMESPACE, "-o", "json").stdout
    )["metadata"]["uid"]
    environment = {
        "FACILITY_DASK_CLUSTER_NAME": "dask-alice",
        "FACILITY_DASK_IMAGE": "analysis:1",
        "FACILITY_DASK_NAMESPACE": NAMESPACE,
        "FACILITY_TOKEN_SECRET": "jupyter-alice-iam-token",
        "FACILITY_TOKEN_MOUNT": "/var/run/secrets/facility",
        "FACILITY_POD_NAME": "jupyter-alice",
        "FACILITY_POD_UID": uid,
        "FACILITY_USER_LABEL": "alice",
        "BEARER_TOKEN_FILE": "/var/run/secrets/facility/bearer_token",
    }
    spec = kube_cluster_spec(environment)
    spec["spec"]["worker"]["replicas"] = 2
    made = create(cluster, spec, user=users["alice"])
    assert made.returncode == 0, made.stderr

    selector = "dask.org/cluster-name=dask-alice"
    workers = wait_for(
        lambda: running(pods(cluster, selector + ",dask.org/component=worker"), 2),
        "two running worker pods",
    )
    scheduler = wait_for(
        lambda: running(pods(cluster, selector + ",dask.org/component=scheduler"), 1),
        "a running scheduler pod",
    )
    for pod in workers + scheduler:
        assert pod["metadata"]["labels"]["hub.jupyter.org/username"] == "alice"
        container = pod["spec"]["containers"][0]
        assert container["image"] == "analysis:1"
        assert {
            "name": "iam-token",
            "mountPath": "/var/run/secrets/facility",
            "readOnly": True,
        } in container["volumeMounts"]
    service = cluster.kubectl("get", "service", "dask-alice-scheduler", "-n", NAMESPACE)
    assert service.returncode == 0, service.stderr

    scaled = cluster.kubectl(
        "patch",
        "daskworkergroup",
        "dask-alice-default",
        "-n",
        NAMESPACE,
        "--type=merge",
        "-p",
        '{"spec": {"worker": {"replicas": 3}}}',
        user=users["alice"],
    )
    assert scaled.returncode == 0, scaled.stderr
    wait_for(
        lambda: running(pods(cluster, selector + ",dask.org/component=worker"), 3), "three workers"
    )

    gone = cluster.kubectl(
        "delete",
        "pod",
        "jupyter-alice",
        "-n",
        NAMESPACE,
        "--wait=false",
        "--grace-period=0",
        "--force",
    )
    assert gone.returncode == 0, gone.stderr
    wait_for(
        lambda: (
            cluster.kubectl("get", "daskcluster", "dask-alice", "-n", NAMESPACE).returncode != 0
        ),
        "the cluster deleted with its owner's server",
    )
    wait_for(lambda: not pods(cluster, selector), "the cluster's pods deleted")
