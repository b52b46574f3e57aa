"""Talking to the test control plane: kubectl and helm as the admin or as an account, the
hub's and users' accounts made as the facility makes them, and waiting for what controllers
do."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from analysis_kernels.dask_tls import user_certificate
from charts.offline_chart import CHART
from hub_config.tenancy import (
    DASK_TLS_SECRET,
    TOKEN_SECRET,
    USER_ACCOUNT,
    tenant_namespace,
    tenant_objects,
)

BIN = Path(sys.executable).parent
NAMESPACE = "analysis"
# Images the tests' pods name; the chart admits only the facility's repositories.
TEST_IMAGES = "tenancy.allowedImages={ghcr.io/analysis-facility/analysis,analysis}"


def create(cluster, manifest: dict | str, user: str | None = None, namespace: str = NAMESPACE):
    """``kubectl create`` of one manifest (or a List) in ``namespace`` (the facility's)."""
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    return cluster.kubectl("create", "-n", namespace, "-f", "-", stdin=text, user=user)


def helm(cluster, *args):
    command = [str(BIN / "helm"), "--kubeconfig", str(cluster.kubeconfig), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def release(cluster, verb: str, chart: Path, values: str, *extra: str):
    """``helm <verb>`` of the release ``facility`` in the test namespace, with a ci values file
    and the tests' image admitted in users' namespaces."""
    ci_values = str(chart / "ci" / values)
    return helm(
        cluster, verb, "facility", str(chart), "-n", NAMESPACE, "-f", ci_values,
        "--set", TEST_IMAGES, *extra,
    )  # fmt: skip


# z2jh's own hub Role (jupyterhub/templates/hub/rbac.yaml in z2jh 4.4.0), which the chart's
# ClusterRoles add to; z2jh's chart repository is out of reach here, so the tests create it.
Z2JH_HUB_RULES = [
    {
        "apiGroups": [""],
        "resources": ["pods", "persistentvolumeclaims", "secrets", "services"],
        "verbs": ["get", "watch", "list", "create", "delete"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "watch", "list"]},
]


def make_hub_account(cluster) -> str:
    """z2jh's hub ServiceAccount with z2jh's hub Role, beside the chart's ClusterRoles."""
    rbac = "rbac.authorization.k8s.io"
    objects = [
        {"kind": "ServiceAccount", "apiVersion": "v1", "metadata": {"name": "hub"}},
        {
            "kind": "Role",
            "apiVersion": f"{rbac}/v1",
            "metadata": {"name": "hub"},
            "rules": Z2JH_HUB_RULES,
        },
        {
            "kind": "RoleBinding",
            "apiVersion": f"{rbac}/v1",
            "metadata": {"name": "hub"},
            "subjects": [{"kind": "ServiceAccount", "name": "hub", "namespace": NAMESPACE}],
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "hub"},
        },
    ]
    made = create(cluster, {"apiVersion": "v1", "kind": "List", "items": objects})
    assert made.returncode == 0, made.stderr
    return account("hub")


def apply_operator_crds(cluster) -> None:
    """The dask operator's CRDs (from the pinned dask-kubernetes), as make upgrade applies
    them, and waits until the API server serves them."""
    from charts.offline_chart import OPERATOR_CHART

    applied = cluster.kubectl("apply", "--server-side", "-f", str(OPERATOR_CHART / "crds"))
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


def account(name: str, namespace: str = NAMESPACE) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def account_kubeconfig(cluster, name: str, path: Path, namespace: str = NAMESPACE) -> Path:
    """A kubeconfig with a token of the ServiceAccount ``name``, as its pod would have."""
    token = cluster.kubectl("create", "token", name, "-n", namespace, "--duration=2h")
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
            {"name": "c", "context": {"cluster": "c", "user": name, "namespace": namespace}}
        ],
        "current-context": "c",
    }
    path.write_text(json.dumps(config))
    return path


def wait_for(check, what: str, timeout: float = 120, every: float = 1):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s"
        time.sleep(every)


def pods(cluster, selector: str, namespace: str = NAMESPACE) -> list[dict]:
    listed = cluster.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json")
    return json.loads(listed.stdout)["items"] if listed.returncode == 0 else []


def running(items: list[dict], count: int) -> list[dict] | None:
    live = [p for p in items if p["status"].get("phase") == "Running"]
    return live if len(live) == count else None


def chart_facility_values() -> dict:
    """The chart's default ``facility.kubernetes`` values (quota and limits of users)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    return values["jupyterhub"]["custom"]["facility"]["kubernetes"]


def make_tenant(cluster, hub_account: str, owner: str) -> dict:
    """A user's namespace and objects, made by the hub's account as FacilityKubeSpawner makes
    them (one by one: the hub's rights in the namespace come with its first binding there),
    with the user's token and Dask certificate Secrets."""
    kube = chart_facility_values()
    manifests = tenant_objects(
        NAMESPACE, owner, "hub", quota=kube["userQuota"], limits=kube["userLimits"]
    )
    namespace = tenant_namespace(NAMESPACE, owner)
    secrets = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "stringData": data,
        }
        for name, data in (
            (DASK_TLS_SECRET, user_certificate(owner)),
            (TOKEN_SECRET, {"bearer_token": f"{owner}-token"}),
        )
    ]
    for manifest in manifests + secrets:
        deadline = time.monotonic() + 60
        while True:  # RBAC takes a moment (longer on a busy machine) to see the hub's new binding
            made = create(cluster, manifest, user=hub_account, namespace=namespace)
            if made.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert made.returncode == 0, (manifest["kind"], manifest["metadata"]["name"], made.stderr)
    return {
        "namespace": namespace,
        "account": account(USER_ACCOUNT, namespace),
        "certificate": secrets[0]["stringData"],
    }
