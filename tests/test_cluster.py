"""The chart against a real Kubernetes API server (etcd, kube-apiserver, controller manager and
scheduler built from k8s.io/kubernetes, as processes on 127.0.0.1): installed and upgraded,
and the tenant-isolation rules asked of the API server itself."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from distributed import Client

from analysis_kernels.clusters import OWNER_LABEL, facility_cluster, kube_cluster_spec
from analysis_kernels.executor.processes import DaskProcesses
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


def account_kubeconfig(cluster, name: str, path: Path) -> Path:
    """A kubeconfig with a token of the ServiceAccount ``name``, as its pod would have."""
    token = cluster.kubectl("create", "token", name, "-n", NAMESPACE, "--duration=2h")
    assert token.returncode == 0, token.stderr
    ca = str(cluster.pki / "ca.crt")
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c", "cluster": {"server": cluster.server, "certificate-authority": ca}}
        ],
        "users": [{"name": name, "user": {"token": token.stdout.strip()}}],
        "contexts": [
            {"name": "c", "context": {"cluster": "c", "user": name, "namespace": NAMESPACE}}
        ],
        "current-context": "c",
    }
    path.write_text(json.dumps(config))
    return path


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
    return cluster.start_dask_operator(NAMESPACE)


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


@pytest.fixture
def alice_server(cluster, users, tmp_path, monkeypatch):
    """What alice's notebook server would have: a pod, her account's token as kubeconfig, and
    the FACILITY_* environment the hub gives it."""
    server = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "jupyter-alice", "labels": {OWNER_LABEL: "alice"}},
        "spec": {"containers": [{"name": "notebook", "image": "analysis:1"}]},
    }
    created = create(cluster, server)
    assert created.returncode == 0, created.stderr
    pod = json.loads(
        cluster.kubectl("get", "pod", "jupyter-alice", "-n", NAMESPACE, "-o", "json").stdout
    )
    kubeconfig = account_kubeconfig(cluster, "user-alice", tmp_path / "alice.kubeconfig")
    environment = {
        "KUBECONFIG": str(kubeconfig),
        "FACILITY_CLUSTER_BACKEND": "kubernetes",
        "FACILITY_DASK_CLUSTER_NAME": "dask-alice",
        "FACILITY_DASK_IMAGE": "analysis:1",
        "FACILITY_DASK_NAMESPACE": NAMESPACE,
        "FACILITY_TOKEN_SECRET": "jupyter-alice-iam-token",
        "FACILITY_TOKEN_MOUNT": "/var/run/secrets/facility",
        "FACILITY_POD_NAME": "jupyter-alice",
        "FACILITY_POD_UID": pod["metadata"]["uid"],
        "FACILITY_OWNER": "alice",
        "BEARER_TOKEN_FILE": "/var/run/secrets/facility/bearer_token",
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    yield pod
    cluster.kubectl(
        "delete",
        "pod",
        "jupyter-alice",
        "-n",
        NAMESPACE,
        "--ignore-not-found",
        "--grace-period=0",
        "--force",
    )


@pytest.fixture
def scheduler_stand_in(cluster, users):
    """kwok runs no containers, so a real Dask scheduler and worker on 127.0.0.1 stand in for
    what the scheduler pod would run: port forwards to port 8786 of the namespace's pods reach
    them, through the API server and kwok's kubelet server.

    A user's server reaches its scheduler's Service over the pod network; this test runs
    outside it, so KubeCluster port-forwards instead, and alice's account gets that one right
    for the test only. Users never have it: it would pass around the NetworkPolicies (the RBAC
    matrix checks that they do not)."""
    processes = DaskProcesses(n_workers=1)
    cluster.forward(NAMESPACE, 8786, int(processes.scheduler_address.rsplit(":", 1)[1]))
    forwarding = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "test-only-port-forward"},
            "rules": [
                {"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["get", "create"]}
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "test-only-port-forward"},
            "subjects": [{"kind": "ServiceAccount", "name": "user-alice", "namespace": NAMESPACE}],
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "test-only-port-forward",
            },
        },
    ]
    granted = create(cluster, {"apiVersion": "v1", "kind": "List", "items": forwarding})
    assert granted.returncode == 0, granted.stderr
    yield processes
    cluster.kubectl("delete", "rolebinding,role", "test-only-port-forward", "-n", NAMESPACE)
    processes.stop()


def test_kube_cluster_from_python_as_the_user_is_made_scaled_and_deleted_by_the_operator(
    cluster, operator, alice_server, scheduler_stand_in
):
    """The facility's own factory (what the JupyterLab sidebar calls) with alice's account and
    environment: the real operator makes the scheduler and worker deployments, pods and service;
    the client computes through the API server's port forward; scaling and closing work with
    nothing but alice's own Role."""
    # Outside the cluster network the scheduler's service name does not resolve.
    dask_cluster = facility_cluster(port_forward_cluster_ip=True)
    selector = "dask.org/cluster-name=dask-alice"
    try:
        dask_cluster.scale(2)
        workers = wait_for(
            lambda: running(pods(cluster, selector + ",dask.org/component=worker"), 2),
            "two running worker pods",
        )
        scheduler = running(pods(cluster, selector + ",dask.org/component=scheduler"), 1)
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
        made = json.loads(
            cluster.kubectl(
                "get", "daskcluster", "dask-alice", "-n", NAMESPACE, "-o", "json"
            ).stdout
        )
        assert made["metadata"]["ownerReferences"][0]["uid"] == alice_server["metadata"]["uid"]
        deployments = cluster.kubectl(
            "get", "deployments", "-n", NAMESPACE, "-l", selector, "-o", "name"
        )
        assert "deployment.apps/dask-alice-scheduler" in deployments.stdout.split()
        service = cluster.kubectl("get", "service", "dask-alice-scheduler", "-n", NAMESPACE)
        assert service.returncode == 0, service.stderr

        with Client(dask_cluster) as client:
            assert client.submit(sum, [1, 2, 3]).result(timeout=60) == 6

        dask_cluster.adapt(minimum=1, maximum=3)  # the sidebar's adapt does the same
        autoscaler = cluster.kubectl("get", "daskautoscaler", "dask-alice", "-n", NAMESPACE)
        assert autoscaler.returncode == 0, autoscaler.stderr
        dask_cluster.scale(3)  # and its scale; this also ends adapting
        wait_for(
            lambda: running(pods(cluster, selector + ",dask.org/component=worker"), 3),
            "three workers",
        )
        wait_for(  # the operator's finalizer goes first
            lambda: (
                cluster.kubectl("get", "daskautoscaler", "dask-alice", "-n", NAMESPACE).returncode
                != 0
            ),
            "the autoscaler deleted by scale()",
        )
    finally:
        dask_cluster.close(timeout=120)
    gone = cluster.kubectl("get", "daskcluster", "dask-alice", "-n", NAMESPACE)
    assert gone.returncode != 0, "close() deletes the DaskCluster"
    wait_for(lambda: not pods(cluster, selector), "the cluster's pods deleted")


def test_the_users_cluster_is_deleted_with_the_users_server(cluster, users, operator, alice_server):
    spec = kube_cluster_spec()
    made = create(cluster, spec, user=users["alice"])
    assert made.returncode == 0, made.stderr
    wait_for(
        lambda: pods(cluster, "dask.org/cluster-name=dask-alice,dask.org/component=scheduler"),
        "the scheduler pod",
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
    wait_for(
        lambda: not pods(cluster, "dask.org/cluster-name=dask-alice"), "the cluster's pods deleted"
    )


# z2jh's own hub Role (jupyterhub/templates/hub/rbac.yaml in z2jh 4.4.0), which the chart's
# hub Role adds to; z2jh's chart repository is out of reach here, so the test creates it.
Z2JH_HUB_RULES = [
    {
        "apiGroups": [""],
        "resources": ["pods", "persistentvolumeclaims", "secrets", "services"],
        "verbs": ["get", "watch", "list", "create", "delete"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "watch", "list"]},
]


@pytest.fixture(scope="module")
def kube_hub(cluster, installed, tmp_path_factory):
    """The real hub, configured by hub_config for Kubernetes, with the development IAM, its
    KubeSpawner talking to this API server as the hub's ServiceAccount. Home storage as z2jh
    configures it (a PVC per user) is given as KubeSpawner options."""
    from hub_config.local.facility import LocalFacility

    hub = {
        "kind": "Role",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": "hub"},
    }
    binding = {
        "kind": "RoleBinding",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": "hub"},
        "subjects": [{"kind": "ServiceAccount", "name": "hub", "namespace": NAMESPACE}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "hub"},
    }
    objects = [
        {"kind": "ServiceAccount", "apiVersion": "v1", "metadata": {"name": "hub"}},
        hub | {"rules": Z2JH_HUB_RULES},
        binding,
    ]
    made = create(cluster, {"apiVersion": "v1", "kind": "List", "items": objects})
    assert made.returncode == 0, made.stderr
    state = tmp_path_factory.mktemp("kube-hub")
    facility = LocalFacility(
        state_dir=state,
        log_dir=state / "logs",
        extra_settings={
            "backend": "kubernetes",
            "kubernetes": {"namespace": NAMESPACE, "defaultImage": "analysis:1"},
        },
        hub_environment={
            "KUBECONFIG": str(account_kubeconfig(cluster, "hub", state / "hub.kubeconfig"))
        },
        hub_args=[
            "--FacilityKubeSpawner.storage_pvc_ensure=True",
            "--FacilityKubeSpawner.pvc_name_template=claim-{user_server}",
            "--FacilityKubeSpawner.storage_capacity=1Gi",
            "--FacilityKubeSpawner.http_timeout=60",
        ],
    )
    facility.start()
    yield facility
    facility.stop()


def test_kubespawner_makes_the_users_pod_home_and_token_secret(cluster, kube_hub):
    from hub_config.local.client import HubUser

    mario = HubUser(kube_hub.url, "mario.rossi@infn.it", "mario-pw").login()
    mario.new_token()
    started = mario.api("POST", "/users/mario.rossi%40infn.it/server", json={"profile": "medium"})
    assert started.status_code in (201, 202), started.text
    owner = "mario-rossi-infn-it---5704bc87"  # his DNS-safe name: account, Role, cluster, label
    [pod] = wait_for(lambda: running(pods(cluster, f"{OWNER_LABEL}={owner}"), 1), "his pod")
    name = pod["metadata"]["name"]

    assert pod["spec"]["serviceAccountName"] == f"user-{owner}"
    container = pod["spec"]["containers"][0]
    assert container["image"] == "analysis:1"
    assert container["resources"]["limits"]["cpu"] == "2"  # the medium profile
    assert container["resources"]["limits"]["memory"] in ("4Gi", str(4 * 2**30))
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    mount = next(m for m in container["volumeMounts"] if m["name"] == "iam-token")
    assert mount == {
        "name": "iam-token",
        "mountPath": "/var/run/secrets/facility",
        "readOnly": True,
    }
    environment = {e["name"]: e.get("value", "") for e in container["env"]}
    assert environment["BEARER_TOKEN_FILE"] == "/var/run/secrets/facility/bearer_token"
    assert environment["FACILITY_OWNER"] == owner

    secret = json.loads(
        cluster.kubectl("get", "secret", f"{name}-iam-token", "-n", NAMESPACE, "-o", "json").stdout
    )
    token = base64.b64decode(secret["data"]["bearer_token"]).decode()
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["iss"] == kube_hub.issuer and claims["sub"]
    assert token not in json.dumps(pod), "the IAM token is in the pod spec"

    claim = cluster.kubectl("get", "pvc", f"claim-{owner}", "-n", NAMESPACE)
    assert claim.returncode == 0, claim.stderr
    for kind, object_name in [
        ("serviceaccount", f"user-{owner}"),
        ("role", f"user-{owner}-dask"),
        ("rolebinding", f"user-{owner}"),
        ("rolebinding", f"user-{owner}-dask"),
        ("networkpolicy", f"dask-{owner}"),
    ]:
        got = cluster.kubectl("get", kind, object_name, "-n", NAMESPACE)
        assert got.returncode == 0, (kind, got.stderr)

    # kwok runs no container, so nothing answers for the server: where the network answers
    # any address, the hub takes that for the server, and otherwise gives up after its
    # timeout. Either way, once the server stops, the pod and the token Secret go and the home
    # PVC stays.
    if wait_for(lambda: spawn_outcome(mario), "the spawn to end", timeout=180) == "ready":
        mario.stop_server()
    wait_for(
        lambda: (
            cluster.kubectl("get", "pod", name, "-n", NAMESPACE).returncode != 0
            and cluster.kubectl("get", "secret", f"{name}-iam-token", "-n", NAMESPACE).returncode
            != 0
        ),
        "the pod and the token Secret removed",
    )
    assert cluster.kubectl("get", "pvc", f"claim-{owner}", "-n", NAMESPACE).returncode == 0


def spawn_outcome(user) -> str | None:
    """ "ready", "gone" (the hub gave up), or None while the spawn is pending."""
    server = user.api("GET", f"/users/{quote(user.name, safe='')}").json()["servers"].get("")
    return "gone" if server is None else ("ready" if server.get("ready") else None)
