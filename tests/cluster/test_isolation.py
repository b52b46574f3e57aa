"""Tenant isolation tried as a hostile user would, against the real API server: each row of
issue 11's table is a request alice's own account makes, and each is refused with its reason
(or, for reads, shows nothing of bob's). Every pod in a user's namespace is checked whoever makes
it, so the same refusals hold for the dask operator's account and for updates."""

from __future__ import annotations

import copy
import json

import pytest
from cluster_api import NAMESPACE, account, account_kubeconfig, create, make_tenant

from analysis_kernels.clusters import OWNER_LABEL
from hub_config.tenancy import tenant_namespace

pytestmark = pytest.mark.slow

OPERATOR = account("dask-kubernetes-operator")
IMAGE = "analysis:1"
RESTRICTED_POD = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
}
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}


def pod_spec(role: str) -> dict:
    container = {
        "name": role,
        "image": IMAGE,
        "securityContext": copy.deepcopy(RESTRICTED_CONTAINER),
    }
    return copy.deepcopy(RESTRICTED_POD) | {"containers": [container]}


def dask_cluster(name: str = "dask-alice") -> dict:
    return {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskCluster",
        "metadata": {"name": name, "labels": {OWNER_LABEL: "alice"}},
        "spec": {
            "worker": {"replicas": 0, "spec": pod_spec("worker")},
            "scheduler": {
                "spec": pod_spec("scheduler"),
                "service": {
                    "selector": {"dask.org/cluster-name": name},
                    "ports": [{"name": "tcp-comm", "port": 8786}],
                },
            },
        },
    }


def worker_group(cluster_name: str = "dask-alice") -> dict:
    return {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskWorkerGroup",
        "metadata": {"name": f"{cluster_name}-extra"},
        "spec": {"cluster": cluster_name, "worker": {"replicas": 0, "spec": pod_spec("worker")}},
    }


def dask_job() -> dict:
    cluster = dask_cluster("dask-job")
    return {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskJob",
        "metadata": {"name": "job"},
        "spec": {"job": {"spec": pod_spec("job")}, "cluster": {"spec": cluster["spec"]}},
    }


def deployment() -> dict:
    """What the operator makes from a worker group: a Deployment whose pods it templates."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "probe"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "probe"}},
            "template": {"metadata": {"labels": {"app": "probe"}}, "spec": pod_spec("c")},
        },
    }


def pod(name: str = "probe") -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": pod_spec("c")}


# What a hostile pod spec asks for, and the reason it is refused with (rows 1 to 6).
HOSTILE = {
    "row 1: the hub's account": (
        lambda s: s.update(serviceAccountName="hub"),
        "run as facility-user or default, not hub",
    ),
    "row 2: the operator's account": (
        lambda s: s.update(serviceAccountName="dask-kubernetes-operator"),
        "not dask-kubernetes-operator",
    ),
    "row 3: bob's account": (
        lambda s: s.update(serviceAccount="user-bob"),
        "not user-bob",
    ),
    "row 4: bob's token": (
        lambda s: s.update(
            volumes=[{"name": "t", "secret": {"secretName": "jupyter-bob-iam-token"}}]
        ),
        "not Secret jupyter-bob-iam-token",
    ),
    "row 4: the IAM client secret": (
        lambda s: s.update(
            volumes=[{"name": "t", "secret": {"secretName": "analysis-facility-iam"}}]
        ),
        "not Secret analysis-facility-iam",
    ),
    "row 4: z2jh's hub Secret, projected": (
        lambda s: s.update(
            volumes=[{"name": "t", "projected": {"sources": [{"secret": {"name": "hub"}}]}}]
        ),
        "not Secret hub",
    ),
    "row 5: hostNetwork": (lambda s: s.update(hostNetwork=True), "host's network, PID or IPC"),
    "row 5: hostPID": (lambda s: s.update(hostPID=True), "host's network, PID or IPC"),
    "row 5: hostIPC": (lambda s: s.update(hostIPC=True), "host's network, PID or IPC"),
    "row 5: a hostPath of /": (
        lambda s: s.update(volumes=[{"name": "root", "hostPath": {"path": "/"}}]),
        "may not mount host paths",
    ),
    "row 5: runAsUser 0": (
        lambda s: s["securityContext"].update(runAsUser=0),
        "non-root user, unprivileged",
    ),
    "row 5: NET_ADMIN": (
        lambda s: s["containers"][0]["securityContext"].update(capabilities={"add": ["NET_ADMIN"]}),
        "without added capabilities",
    ),
    "row 5: SYS_ADMIN, privileged": (
        lambda s: s["containers"][0]["securityContext"].update(
            privileged=True, capabilities={"add": ["SYS_ADMIN"]}
        ),
        "without added capabilities",
    ),
    "a node of its choosing": (lambda s: s.update(nodeName="kwok-node-0"), "(nodeName)"),
    "a priority class that preempts": (
        lambda s: s.update(priorityClassName="system-cluster-critical"),
        "priority class system-cluster-critical is not one users may take",
    ),
    "row 6: any image": (
        lambda s: s["containers"][0].update(image="evil.example/miner:latest"),
        "image evil.example/miner:latest is not one of the facility's",
    ),
}

# Ways a pod spec reaches the namespace through a user: a DaskCluster (scheduler or worker
# template), a DaskWorkerGroup, a DaskJob (its job pod, or its cluster's templates).
PATHS = {
    "cluster scheduler": lambda f: (dask_cluster(), lambda m: f(m["spec"]["scheduler"]["spec"])),
    "cluster worker": lambda f: (dask_cluster(), lambda m: f(m["spec"]["worker"]["spec"])),
    "worker group": lambda f: (worker_group(), lambda m: f(m["spec"]["worker"]["spec"])),
    "job pod": lambda f: (dask_job(), lambda m: f(m["spec"]["job"]["spec"])),
    "job's cluster": lambda f: (
        dask_job(),
        lambda m: f(m["spec"]["cluster"]["spec"]["worker"]["spec"]),
    ),
}


def refused(result, reason: str) -> None:
    assert result.returncode != 0, "accepted"
    assert reason in result.stderr, result.stderr


@pytest.mark.parametrize("what", sorted(HOSTILE))
def test_hostile_pod_specs_are_refused_on_every_path(cluster, users, what):
    change, reason = HOSTILE[what]
    alice = users["alice"]
    for path, build in PATHS.items():
        manifest, apply = build(change)
        manifest = copy.deepcopy(manifest)
        apply(manifest)
        result = create(cluster, manifest, user=alice["account"], namespace=alice["namespace"])
        assert result.returncode != 0, (what, path, "accepted")
        assert reason in result.stderr, (what, path, result.stderr)
    # The operator's own account is refused too, for the Deployments and pods it makes: by the
    # same policy, or first by Kubernetes' own boundary (no such account in the namespace), by
    # Pod Security, or by the API server's refusal of privileged containers and of system
    # priority classes outside kube-system.
    made = deployment()
    change(made["spec"]["template"]["spec"])
    spec = pod()
    change(spec["spec"])
    for manifest in (made, spec):
        result = create(cluster, manifest, user=OPERATOR, namespace=alice["namespace"])
        assert result.returncode != 0, (what, manifest["kind"], "accepted")
        assert any(
            why in result.stderr
            for why in (
                reason,
                "not found",
                'violates PodSecurity "restricted',
                "cluster policy",
                "priorityClass is not permitted",
            )
        ), (what, manifest["kind"], result.stderr)


def test_row_7_updates_are_checked_like_creates(cluster, users):
    alice = users["alice"]
    made = create(cluster, dask_cluster(), user=alice["account"], namespace=alice["namespace"])
    assert made.returncode == 0, made.stderr
    try:
        for what in ("row 1: the hub's account", "row 5: a hostPath of /", "row 6: any image"):
            change, reason = HOSTILE[what]
            spec = pod_spec("worker")
            change(spec)
            patch = json.dumps({"spec": {"worker": {"spec": spec}}})
            result = cluster.kubectl(
                "patch", "daskcluster", "dask-alice", "-n", alice["namespace"],
                "--type=merge", "-p", patch, user=alice["account"],
            )  # fmt: skip
            refused(result, reason)
    finally:
        cluster.kubectl("delete", "daskcluster", "dask-alice", "-n", alice["namespace"])


def test_rows_8_and_11_another_users_cluster_cannot_be_named_across_namespaces(cluster, users):
    """A worker group or autoscaler names a cluster in its own namespace: alice's naming
    dask-bob lands in hers, and she can make nothing in bob's. (Reaching bob's scheduler over the
    network is refused by his TLS: tests/test_dask_tls.py.)"""
    alice, bob = users["alice"], users["bob"]
    for manifest in (worker_group("dask-bob"), autoscaler("dask-bob")):
        theirs = create(cluster, manifest, user=alice["account"], namespace=bob["namespace"])
        refused(theirs, "forbidden")
    own = create(
        cluster, worker_group("dask-bob"), user=alice["account"], namespace=alice["namespace"]
    )
    assert own.returncode == 0, own.stderr
    made = json.loads(
        cluster.kubectl(
            "get", "daskworkergroup", "dask-bob-extra", "-n", alice["namespace"], "-o", "json"
        ).stdout
    )
    assert made["metadata"]["namespace"] == alice["namespace"]
    cluster.kubectl("delete", "daskworkergroup", "dask-bob-extra", "-n", alice["namespace"])


def autoscaler(cluster_name: str) -> dict:
    return {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskAutoscaler",
        "metadata": {"name": "dask-alice"},
        "spec": {"cluster": cluster_name, "minimum": 0, "maximum": 100},
    }


def test_row_9_the_operators_label_is_reserved(cluster, users):
    alice = users["alice"]
    manifest = dask_cluster()
    manifest["spec"]["worker"]["metadata"] = {
        "labels": {"app.kubernetes.io/name": "dask-kubernetes-operator"}
    }
    result = create(cluster, manifest, user=alice["account"], namespace=alice["namespace"])
    refused(result, "app.kubernetes.io/name=dask-kubernetes-operator is reserved")


@pytest.mark.parametrize(
    "service",
    [{"type": "NodePort"}, {"type": "LoadBalancer"}, {"externalIPs": ["203.0.113.7"]}],
    ids=["NodePort", "LoadBalancer", "externalIPs"],
)
def test_row_10_exposed_services_are_refused(cluster, users, service):
    alice = users["alice"]
    manifest = dask_cluster()
    manifest["spec"]["scheduler"]["service"] |= service
    result = create(cluster, manifest, user=alice["account"], namespace=alice["namespace"])
    refused(result, "ClusterIP Services without externalIPs")
    direct = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "exposed"},
        "spec": {"ports": [{"port": 8786}], "selector": {"app": "x"}} | service,
    }
    refused(create(cluster, direct, user=OPERATOR, namespace=alice["namespace"]), "ClusterIP")


def test_row_12_a_user_named_like_a_facility_account_gets_only_their_own(cluster, hub):
    """A user called 'scheduler' (z2jh has a user-scheduler account, the operator one of its
    own) gets a namespace of their own and nothing of the facility's accounts."""
    tenant = make_tenant(cluster, hub, "scheduler")
    assert tenant["namespace"] == tenant_namespace(NAMESPACE, "scheduler")
    for verb, resource in (("delete", "pods"), ("list", "secrets"), ("create", "pods")):
        answer = cluster.kubectl(
            "auth", "can-i", verb, resource, "--all-namespaces", user=tenant["account"]
        )
        assert answer.stdout.strip() == "no", (verb, resource)


def test_row_12_the_hub_adopts_nothing_that_is_not_the_users(cluster, hub, tmp_path):
    """The spawner's own check (hub_config.kube.ensure), with the hub's account, against a
    namespace someone else made under a user's name."""
    import asyncio

    from kubernetes_asyncio.config import load_kube_config
    from tornado import web

    from hub_config.kube import ensure
    from hub_config.tenancy import tenant_objects

    made = cluster.kubectl("create", "namespace", tenant_namespace(NAMESPACE, "mallory"))
    assert made.returncode == 0, made.stderr

    kubeconfig = account_kubeconfig(cluster, "hub", tmp_path / "hub.kubeconfig")

    async def spawn_setup():
        await load_kube_config(config_file=str(kubeconfig))
        for manifest in tenant_objects(NAMESPACE, "mallory", "hub"):
            await ensure(manifest, "mallory")

    with pytest.raises(web.HTTPError) as refusal:
        asyncio.run(spawn_setup())
    message = refusal.value.log_message
    assert f"Namespace {tenant_namespace(NAMESPACE, 'mallory')} exists" in message
    assert "not made by the facility for mallory" in message


def test_row_13_nothing_of_bobs_is_visible_to_alice(cluster, users):
    alice, bob = users["alice"], users["bob"]
    for attempt in (
        ["get", "pods", "-n", bob["namespace"]],
        ["get", "services", "-n", bob["namespace"]],
        ["get", "daskclusters", "-n", bob["namespace"]],
        ["get", "events", "-n", bob["namespace"]],
        ["logs", "dask-bob-scheduler", "-n", bob["namespace"]],
        ["get", "pods", "--all-namespaces"],
        ["get", "pods", "-n", NAMESPACE],
        ["get", "secrets", "-n", alice["namespace"]],
        ["get", "namespaces"],
    ):
        result = cluster.kubectl(*attempt, user=alice["account"])
        assert result.returncode != 0 and "forbidden" in result.stderr, (attempt, result.stderr)
    own = cluster.kubectl(
        "get", "pods,services,daskclusters", "-n", alice["namespace"], user=alice["account"]
    )
    assert own.returncode == 0, own.stderr


def test_users_rights_end_at_their_namespace(cluster, users):
    alice = users["alice"]

    def can(verb: str, resource: str, namespace: str) -> bool:
        answer = cluster.kubectl(
            "auth", "can-i", verb, resource, "-n", namespace, user=alice["account"]
        )
        return answer.stdout.strip() == "yes"

    own = alice["namespace"]
    for verb in ("create", "get", "list", "patch", "delete"):
        assert can(verb, "daskclusters.kubernetes.dask.org", own), verb
        assert can(verb, "daskjobs.kubernetes.dask.org", own), verb
        assert not can(verb, "daskclusters.kubernetes.dask.org", users["bob"]["namespace"]), verb
        assert not can(verb, "daskclusters.kubernetes.dask.org", NAMESPACE), verb
    for verb, resource in [
        ("get", "secrets"),
        ("create", "pods"),
        ("create", "pods/portforward"),
        ("create", "pods/exec"),
        ("create", "rolebindings"),
        ("create", "roles"),
        ("delete", "networkpolicies"),
        ("update", "resourcequotas"),
        ("create", "serviceaccounts"),
        ("patch", "namespaces"),
    ]:
        assert not can(verb, resource, own), (verb, resource)


def test_pod_security_restricted_holds_on_its_own(cluster, users):
    """A pod the admission policy lets through but that is not 'restricted' (no seccomp
    profile, root allowed) is refused by the namespace's Pod Security."""
    lax = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "lax"},
        "spec": {"containers": [{"name": "c", "image": IMAGE}]},
    }
    result = create(cluster, lax, namespace=users["alice"]["namespace"])
    refused(result, 'violates PodSecurity "restricted:latest"')


def test_the_operators_rights_end_at_users_namespaces(cluster, installed):
    for namespace in (NAMESPACE, "kube-system", "default"):
        for verb, resource in (("create", "pods"), ("create", "deployments"), ("delete", "pods")):
            answer = cluster.kubectl(
                "auth", "can-i", verb, resource, "-n", namespace, user=OPERATOR
            )
            assert answer.stdout.strip() == "no", (namespace, verb, resource)


def test_the_hub_cannot_grant_or_reach_beyond_users_namespaces(cluster, hub, users):
    def as_hub(manifest: dict, namespace: str = NAMESPACE):
        return create(cluster, manifest, user=hub, namespace=namespace)

    namespace = {"apiVersion": "v1", "kind": "Namespace"}
    refused(as_hub(namespace | {"metadata": {"name": "kube-evil"}}), "only users' namespaces")
    unlabelled = {"name": tenant_namespace(NAMESPACE, "eve"), "labels": {OWNER_LABEL: "eve"}}
    refused(as_hub(namespace | {"metadata": unlabelled}), "analysis-facility/tenant=")

    def binding(role: str, kind: str = "ClusterRole") -> dict:
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "grab"},
            "subjects": [{"kind": "ServiceAccount", "name": "hub", "namespace": NAMESPACE}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        }

    hub_tenant = f"analysis-facility:{NAMESPACE}:hub-tenant"
    for where in ("kube-system", NAMESPACE, "default"):
        refused(as_hub(binding(hub_tenant), where), "only inside users' namespaces")
    refused(as_hub(binding("cluster-admin"), users["alice"]["namespace"]), "forbidden")
    refused(as_hub(binding("admin"), users["alice"]["namespace"]), "forbidden")
    for attempt in (
        ["get", "secrets", "-n", "kube-system"],
        ["get", "pods", "-n", "kube-system"],
        ["create", "clusterrolebinding", "grab", "--clusterrole=cluster-admin", "--user=x"],
        ["label", "namespace", "kube-system", "analysis-facility/tenant=analysis"],
    ):
        result = cluster.kubectl(*attempt, user=hub)
        assert result.returncode != 0 and "forbidden" in result.stderr, (attempt, result.stderr)
