"""The real hub's KubeSpawner, configured by hub_config, against the test API server."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest
from cluster_api import NAMESPACE, account_kubeconfig, pods, running, wait_for

from analysis_kernels.clusters import OWNER_LABEL
from hub_config.tenancy import tenant_namespace, tenant_objects

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kube_hub(cluster, hub, tmp_path_factory):
    """The real hub, configured by hub_config for Kubernetes, with the development IAM, its
    KubeSpawner talking to this API server as the hub's ServiceAccount (z2jh's hub Role and the
    chart's ClusterRoles). Home storage as z2jh configures it (a PVC per user) is given as
    KubeSpawner options, over z2jh-like c.KubeSpawner settings the facility must merge with."""
    from hub_config.local.facility import LocalFacility

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
            "--KubeSpawner.extra_labels=hub.jupyter.org/network-access-hub=true",
            "--KubeSpawner.service_account=z2jh-singleuser",
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
    owner = "mario-rossi-infn-it---5704bc87"  # his DNS-safe name: namespace, cluster, label
    namespace = tenant_namespace(NAMESPACE, owner)
    [pod] = wait_for(
        lambda: running(pods(cluster, f"{OWNER_LABEL}={owner}", namespace), 1), "his pod"
    )
    name = pod["metadata"]["name"]

    assert pod["spec"]["serviceAccountName"] == "facility-user"
    assert pod["metadata"]["labels"]["hub.jupyter.org/network-access-hub"] == "true"
    container = pod["spec"]["containers"][0]
    assert container["image"] == "analysis:1"
    assert container["resources"]["limits"]["cpu"] == "2"  # the medium profile
    assert container["resources"]["limits"]["memory"] in ("4Gi", str(4 * 2**30))
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    mount = next(m for m in container["volumeMounts"] if m["name"] == "facility-iam-token")
    assert mount == {
        "name": "facility-iam-token",
        "mountPath": "/var/run/secrets/facility",
        "readOnly": True,
    }
    environment = {e["name"]: e.get("value", "") for e in container["env"]}
    assert environment["BEARER_TOKEN_FILE"] == "/var/run/secrets/facility/bearer_token"
    assert environment["FACILITY_OWNER"] == owner

    secret = json.loads(
        cluster.kubectl("get", "secret", "iam-token", "-n", namespace, "-o", "json").stdout
    )
    token = base64.b64decode(secret["data"]["bearer_token"]).decode()
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["iss"] == kube_hub.issuer and claims["sub"]
    assert token not in json.dumps(pod), "the IAM token is in the pod spec"

    claim = cluster.kubectl("get", "pvc", f"claim-{owner}", "-n", namespace)
    assert claim.returncode == 0, claim.stderr
    for manifest in tenant_objects(NAMESPACE, owner, "hub")[1:]:
        kind, object_name = manifest["kind"].lower(), manifest["metadata"]["name"]
        got = cluster.kubectl("get", kind, object_name, "-n", namespace)
        assert got.returncode == 0, (kind, got.stderr)
    assert cluster.kubectl("get", "secret", "dask-tls", "-n", namespace).returncode == 0

    # kwok runs no container, so nothing answers for the server: where the network answers
    # any address, the hub takes that for the server, and otherwise gives up after its
    # timeout. Either way, once the server stops, the pod and the token Secret go and the home
    # PVC stays.
    if wait_for(lambda: spawn_outcome(mario), "the spawn to end", timeout=180) == "ready":
        mario.stop_server()
    wait_for(
        lambda: (
            cluster.kubectl("get", "pod", name, "-n", namespace).returncode != 0
            and cluster.kubectl("get", "secret", "iam-token", "-n", namespace).returncode != 0
        ),
        "the pod and the token Secret removed",
    )
    assert cluster.kubectl("get", "pvc", f"claim-{owner}", "-n", namespace).returncode == 0


def spawn_outcome(user) -> str | None:
    """ "ready", "gone" (the hub gave up), or None while the spawn is pending."""
    server = user.api("GET", f"/users/{quote(user.name, safe='')}").json()["servers"].get("")
    return "gone" if server is None else ("ready" if server.get("ready") else None)
