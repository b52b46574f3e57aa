"""The Kubernetes side of hub_config, built offline: settings → KubeSpawner → pod manifest, and
the user's DaskCluster spec. No API server is contacted here (the kubeconfig points at a
closed port); installing them on a real API server is the Kubernetes control-plane issue's
test."""

from __future__ import annotations

import asyncio
import secrets

import kubernetes_validate
import pytest
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.config import kube_config as kube_config_module
from traitlets.config import Config

from analysis_kernels.clusters import OWNER_LABEL, dashboard_host_allowed, kube_cluster_spec
from analysis_kernels.executor.processes import free_port
from hub_config.configure import configure
from hub_config.kube import FacilityKubeSpawner, user_objects
from hub_config.settings import load_settings

OPERATOR = {"app.kubernetes.io/name": "dask-kubernetes-operator"}
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{{name: closed, cluster: {{server: "https://127.0.0.1:{port}"}}}}]
users: [{{name: nobody, user: {{token: unused}}}}]
contexts: [{{name: closed, context: {{cluster: closed, user: nobody, namespace: facility}}}}]
current-context: closed
"""


class Group:
    def __init__(self, name):
        self.name = name


@pytest.fixture
def kube_config(tmp_path, monkeypatch):
    (tmp_path / "kubeconfig").write_text(KUBECONFIG.format(port=free_port()))
    (tmp_path / "secret").write_text("s3cret")
    # kubernetes_asyncio reads $KUBECONFIG once, at import; point it at this file.
    monkeypatch.setattr(
        kube_config_module, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "kubeconfig")
    )
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", secrets.token_hex(32))
    settings = load_settings(
        {
            "backend": "kubernetes",
            "iam": {
                "issuer": "https://iam.example.org/",
                "clientId": "hub",
                "clientSecretFile": str(tmp_path / "secret"),
                "allowedGroups": ["cms"],
            },
            "kubernetes": {"namespace": "facility", "defaultImage": "analysis:1.0"},
        }
    )
    c = Config()
    configure(c, settings)
    return c


def test_kubernetes_backend_picks_kubespawner_and_keeps_the_rest(kube_config):
    assert kube_config.JupyterHub.spawner_class == "hub_config.kube.FacilityKubeSpawner"
    assert kube_config.JupyterHub.authenticator_class == "hub_config.iam.IAMAuthenticator"
    assert kube_config.FacilityKubeSpawner.namespace == "facility"


def test_pod_has_the_profile_the_token_file_and_no_secret_in_its_spec(kube_config):
    spawner, pod = asyncio.run(_manifest(kube_config, {"profile": "medium"}))
    container = pod["spec"]["containers"][0]
    assert container["image"] == "analysis:1.0"
    assert container["resources"]["limits"] == {"cpu": 2.0, "memory": 4 * 2**30}
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "iam-token")
    assert mount["mountPath"] == "/var/run/secrets/facility" and mount["readOnly"]
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "iam-token")
    assert volume["secret"]["secretName"] == f"{spawner.pod_name}-iam-token"
    env = {e["name"]: e for e in container["env"]}
    assert env["BEARER_TOKEN_FILE"]["value"] == "/var/run/secrets/facility/bearer_token"
    assert env["FACILITY_POD_UID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"
    assert env["FACILITY_DASK_CLUSTER_NAME"]["value"] == "dask-mock-name---6241db84"
    # Account, cluster and owner label all come from one DNS-safe form of the name.
    assert env["FACILITY_OWNER"]["value"] == "mock-name---6241db84"
    assert pod["metadata"]["labels"][OWNER_LABEL] == "mock-name---6241db84"
    assert pod["spec"]["serviceAccountName"] == "user-mock-name---6241db84"
    assert "s3cret" not in str(pod)


def test_forbidden_profile_is_not_offered(kube_config):
    spawner, _ = asyncio.run(_manifest(kube_config, {}))
    offered = [p["slug"] for p in spawner.profile_list(spawner)]
    assert offered == ["small", "medium"]


async def _manifest(config: Config, user_options: dict):
    """A spawner for a CMS user (KubeSpawner's own offline test mode) and its pod manifest."""
    spawner = FacilityKubeSpawner(_mock=True, config=config)
    spawner.user.groups = [Group("cms")]
    spawner.user_options = user_options
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    return spawner, ApiClient().sanitize_for_serialization(pod)


def test_users_dask_cluster_mounts_the_token_and_dies_with_the_pod():
    env = {
        "FACILITY_DASK_CLUSTER_NAME": "dask-alice",
        "FACILITY_DASK_IMAGE": "analysis:1.0",
        "FACILITY_DASK_NAMESPACE": "facility",
        "FACILITY_TOKEN_SECRET": "jupyter-alice-iam-token",
        "FACILITY_TOKEN_MOUNT": "/var/run/secrets/facility",
        "FACILITY_POD_NAME": "jupyter-alice",
        "FACILITY_POD_UID": "0b6a3c1e-0000-4000-8000-000000000001",
        "BEARER_TOKEN_FILE": "/var/run/secrets/facility/bearer_token",
        "FACILITY_OWNER": "alice",
    }
    spec = kube_cluster_spec(env)
    assert spec["metadata"]["name"] == "dask-alice"
    assert spec["metadata"]["labels"] == {OWNER_LABEL: "alice"}
    assert spec["metadata"]["ownerReferences"][0]["uid"] == env["FACILITY_POD_UID"]
    for role in ("scheduler", "worker"):
        pod = spec["spec"][role]["spec"]
        assert pod["volumes"][0]["secret"]["secretName"] == "jupyter-alice-iam-token"
        container = pod["containers"][0]
        assert container["image"] == "analysis:1.0"
        assert container["volumeMounts"][0]["mountPath"] == "/var/run/secrets/facility"
    worker = spec["spec"]["worker"]["spec"]["containers"][0]
    assert {"name": "BEARER_TOKEN_FILE", "value": env["BEARER_TOKEN_FILE"]} in worker["env"]
    with pytest.raises(ValueError, match="FACILITY_POD_UID"):
        kube_cluster_spec({k: v for k, v in env.items() if k != "FACILITY_POD_UID"})


def test_each_user_gets_an_account_their_own_dask_role_and_a_dask_network_policy():
    objects = user_objects("facility", "alice", "analysis-facility-user", OPERATOR)
    for manifest in objects:
        kubernetes_validate.validate(manifest, "1.32", strict=True)
    account, shared, own_role, own, policy = objects
    assert account["metadata"]["name"] == "user-alice"
    subjects = [{"kind": "ServiceAccount", "name": "user-alice", "namespace": "facility"}]
    assert shared["subjects"] == own["subjects"] == subjects
    assert shared["roleRef"]["name"] == "analysis-facility-user"
    assert own["roleRef"]["name"] == own_role["metadata"]["name"] == "user-alice-dask"
    names = {n for rule in own_role["rules"] for n in rule["resourceNames"]}
    assert names == {"dask-alice", "dask-alice-default"}
    assert policy["spec"]["podSelector"]["matchLabels"] == {OWNER_LABEL: "alice"}
    sources = [rule["from"][0]["podSelector"]["matchLabels"] for rule in policy["spec"]["ingress"]]
    assert sources == [{OWNER_LABEL: "alice"}, OPERATOR]


def test_dashboards_of_users_schedulers_and_nothing_else_go_through_the_proxy(kube_config):
    link = kube_config.FacilityKubeSpawner.facility_environment["DASK_DISTRIBUTED__DASHBOARD__LINK"]
    assert link == "{JUPYTERHUB_SERVICE_PREFIX}proxy/{host}:{port}/status"
    for host in (
        "dask-alice-scheduler",
        "dask-alice-scheduler.facility",
        "localhost",
        "dask-mario-rossi-infn-it---1729ec91-scheduler.facility.svc.cluster.local",
    ):
        assert dashboard_host_allowed(None, host), host
    for host in (
        "hub",
        "proxy-public.facility",
        "kubernetes.default.svc",
        "169.254.169.254",
        "dask-alice-scheduler.evil.example.org",
    ):
        assert not dashboard_host_allowed(None, host), host
