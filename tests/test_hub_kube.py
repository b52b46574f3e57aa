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
from hub_config.kube import FacilityKubeSpawner
from hub_config.settings import FacilityConfigError, load_settings
from hub_config.tenancy import TENANT_LABEL, adoptable, tenant_objects

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
    assert kube_config.FacilityKubeSpawner.hub_namespace == "facility"


def test_pod_has_the_profile_the_token_file_and_no_secret_in_its_spec(kube_config):
    spawner, pod = asyncio.run(_manifest(kube_config, {"profile": "medium"}))
    container = pod["spec"]["containers"][0]
    assert container["image"] == "analysis:1.0"
    assert container["resources"]["limits"] == {"cpu": 2.0, "memory": 4 * 2**30}
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert spawner.namespace == "facility-u-mock-name---6241db84"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "facility-iam-token")
    assert mount["mountPath"] == "/var/run/secrets/facility" and mount["readOnly"]
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "facility-iam-token")
    assert volume["secret"]["secretName"] == "iam-token"
    tls = next(v for v in pod["spec"]["volumes"] if v["name"] == "facility-dask-tls")
    assert tls["secret"]["secretName"] == "dask-tls"
    env = {e["name"]: e for e in container["env"]}
    assert env["BEARER_TOKEN_FILE"]["value"] == "/var/run/secrets/facility/bearer_token"
    assert env["FACILITY_POD_UID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"
    assert env["FACILITY_DASK_CLUSTER_NAME"]["value"] == "dask-mock-name---6241db84"
    # Account, cluster and owner label all come from one DNS-safe form of the name.
    assert env["FACILITY_OWNER"]["value"] == "mock-name---6241db84"
    assert pod["metadata"]["labels"][OWNER_LABEL] == "mock-name---6241db84"
    assert pod["spec"]["serviceAccountName"] == "facility-user"
    assert env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"]["value"] == "True"
    assert "s3cret" not in str(pod)


# Every trait z2jh 4.4.0's jupyterhub_config.py may set on c.KubeSpawner from its singleuser
# values, with values of the shapes it gives (volumes as dicts, as z2jh builds them).
Z2JH_SINGLEUSER = {
    "extra_labels": {"hub.jupyter.org/network-access-hub": "true"},
    "extra_annotations": {"site": "annotated"},
    "profile_list": [],
    "volumes": {"home": {"name": "home", "persistentVolumeClaim": {"claimName": "claim-x"}}},
    "volume_mounts": {"home": {"name": "home", "mountPath": "/home/jovyan"}},
    "environment": {"SITE_VARIABLE": "kept"},
    "service_account": "z2jh-singleuser",
    "automount_service_account_token": False,
    "uid": 1000,
    "fs_gid": 100,
    "mem_guarantee": "1G",
    "cpu_limit": None,
    "image": "quay.io/jupyterhub/k8s-singleuser-sample:4.4.0",
    "storage_pvc_ensure": True,
    "pvc_name_template": "claim-{username}",
    "events_enabled": True,
    "node_selector": {},
    "init_containers": [],
    "extra_containers": [],
    "lifecycle_hooks": {},
    "extra_pod_config": {},
}


def test_z2jhs_singleuser_settings_merge_with_the_facilitys_not_replace_them(kube_config):
    """z2jh configures c.KubeSpawner before hub_config runs; the facility's own parts of the
    pod must survive it, and z2jh's must stay (issue 12, part 1)."""
    config = Config()
    for trait, value in Z2JH_SINGLEUSER.items():
        if value is not None:
            setattr(config.KubeSpawner, trait, value)
    config.merge(kube_config)
    spawner, pod = asyncio.run(_manifest(config, {"profile": "medium"}))
    container = pod["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"cpu": 2.0, "memory": 4 * 2**30}
    assert container["image"] == "analysis:1.0"
    labels = pod["metadata"]["labels"]
    assert labels[OWNER_LABEL] == "mock-name---6241db84"
    assert labels["hub.jupyter.org/network-access-hub"] == "true"
    volumes = {v["name"] for v in pod["spec"]["volumes"]}
    assert {"home", "facility-iam-token", "facility-dask-tls"} <= volumes
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["home"] == "/home/jovyan"
    assert mounts["facility-iam-token"] == "/var/run/secrets/facility"
    env = {e["name"]: e for e in container["env"]}
    assert env["SITE_VARIABLE"]["value"] == "kept"
    assert env["FACILITY_POD_UID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"
    assert pod["spec"]["serviceAccountName"] == "facility-user"
    assert pod["spec"]["automountServiceAccountToken"] is True
    assert [p["slug"] for p in spawner.profile_list(spawner)] == ["small", "medium"]


def test_users_namespaces_follow_the_hubs_namespace_as_z2jh_configures_it(kube_config):
    """z2jh sets c.KubeSpawner.namespace from the hub pod's POD_NAMESPACE; with no facility
    namespace setting, users' namespaces are made beside the hub's, not beside 'default'."""
    config = Config()
    config.KubeSpawner.namespace = "analysis-facility"
    config.merge(kube_config)
    del config.FacilityKubeSpawner["hub_namespace"]
    spawner, pod = asyncio.run(_manifest(config, {}))
    assert spawner.hub_namespace == "analysis-facility"
    assert spawner.namespace == "analysis-facility-u-mock-name---6241db84"
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["FACILITY_DASK_NAMESPACE"] == spawner.namespace


def test_users_servers_reach_the_hub_by_a_name_that_resolves_in_their_namespaces(kube_config):
    """z2jh sets hub_connect_url to http://hub:8081, which resolves in the hub's namespace
    only; users' servers live in their own, where it failed on the real node with z2jh's hub
    pod ("Cannot connect to host hub:8081 ... DNS server returned general failure"). The
    name gets the hub's namespace; a site's qualified name or address is kept."""

    def connect_url(z2jh_url: str, namespace: str = "facility") -> str:
        config = Config()
        config.JupyterHub.hub_connect_url = z2jh_url
        config.KubeSpawner.namespace = namespace
        settings = load_settings(
            {
                "backend": "kubernetes",
                "iam": {
                    "issuer": "https://iam.example.org/",
                    "clientId": "hub",
                    "clientSecretFile": "/dev/null",
                    "allowedGroups": ["cms"],
                },
            }
        )
        configure(config, settings)
        return config.JupyterHub.hub_connect_url

    assert connect_url("http://hub:8081") == "http://hub.facility.svc:8081"
    assert connect_url("http://hub:8081", "analysis") == "http://hub.analysis.svc:8081"
    assert connect_url("http://hub.site.example:8081") == "http://hub.site.example:8081"
    assert connect_url("http://10.0.0.5:8081") == "http://10.0.0.5:8081"
    # With the facility's own namespace setting, that namespace is the hub's.
    assert kube_config.FacilityKubeSpawner.hub_namespace == "facility"


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
        "FACILITY_DASK_TLS_SECRET": "dask-tls",
        "FACILITY_POD_NAME": "jupyter-alice",
        "FACILITY_POD_UID": "0b6a3c1e-0000-4000-8000-000000000001",
        "BEARER_TOKEN_FILE": "/var/run/secrets/facility/bearer_token",
        "FACILITY_OWNER": "alice",
    }
    spec = kube_cluster_spec(env)
    assert spec["metadata"]["name"] == "dask-alice"
    assert spec["spec"]["worker"]["replicas"] == 0
    assert kube_cluster_spec(env, n_workers=2)["spec"]["worker"]["replicas"] == 2
    assert spec["metadata"]["labels"] == {OWNER_LABEL: "alice"}
    assert spec["metadata"]["ownerReferences"][0]["uid"] == env["FACILITY_POD_UID"]
    for role in ("scheduler", "worker"):
        pod = spec["spec"][role]["spec"]
        assert pod["volumes"][0]["secret"]["secretName"] == "jupyter-alice-iam-token"
        container = pod["containers"][0]
        assert container["image"] == "analysis:1.0"
        assert container["volumeMounts"][0]["mountPath"] == "/var/run/secrets/facility"
        # What the user's namespace enforces (Pod Security restricted), and TLS only.
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert pod["volumes"][1]["secret"]["secretName"] == "dask-tls"
    scheduler = spec["spec"]["scheduler"]["spec"]["containers"][0]
    assert scheduler["args"][:2] == ["dask", "scheduler"]
    assert scheduler["args"][-2:] == ["--protocol", "tls"]
    # The operator's checks go through the scheduler's HTTP API, not plain-TCP RPC.
    routes = next(e["value"] for e in scheduler["env"] if e["name"].endswith("HTTP__ROUTES"))
    assert "distributed.http.scheduler.api" in routes
    worker = spec["spec"]["worker"]["spec"]["containers"][0]
    assert worker["args"][:2] == ["dask", "worker"]  # distributed's own command
    assert {"name": "BEARER_TOKEN_FILE", "value": env["BEARER_TOKEN_FILE"]} in worker["env"]
    address = "tls://dask-alice-scheduler.facility.svc.cluster.local:8786"
    assert {"name": "DASK_SCHEDULER_ADDRESS", "value": address} in worker["env"]
    with pytest.raises(ValueError, match="FACILITY_POD_UID"):
        kube_cluster_spec({k: v for k, v in env.items() if k != "FACILITY_POD_UID"})


def test_the_hub_takes_up_again_only_what_it_made_for_that_user():
    """A user's second server finds the namespace and objects of the first: the hub keeps
    them; anything not labelled for that user is refused (tests/cluster: row 12)."""
    assert adoptable({OWNER_LABEL: "alice", "app": "x"}, "alice")
    assert not adoptable({OWNER_LABEL: "bob"}, "alice")
    assert not adoptable({}, "alice") and not adoptable(None, "alice")


def test_each_user_gets_a_restricted_namespace_of_their_own():
    objects = tenant_objects("facility", "alice", "hub", quota={"pods": "10"}, limits={})
    for manifest in objects:
        kubernetes_validate.validate(manifest, "1.32", strict=True)
    namespace = objects[0]
    assert namespace["metadata"]["name"] == "facility-u-alice"
    labels = namespace["metadata"]["labels"]
    assert labels[TENANT_LABEL] == "facility" and labels[OWNER_LABEL] == "alice"
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    # The hub binds itself first: it holds no rights in a new namespace before that.
    assert objects[1]["roleRef"]["name"] == "analysis-facility:facility:hub-tenant"
    assert all(
        o["metadata"].get("namespace", "facility-u-alice") == "facility-u-alice" for o in objects
    )
    assert all(o["metadata"]["labels"][OWNER_LABEL] == "alice" for o in objects)
    policies = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "NetworkPolicy"}
    operator = policies["dask-from-owner-and-operator"]["ingress"][1]["from"][0]
    # The operator is known by its namespace too: a label alone proves nothing.
    assert operator["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "facility"}
    }
    assert objects[-1]["kind"] == "ResourceQuota"


def test_users_pods_reach_dns_their_namespace_the_hub_the_api_server_and_the_internet_only():
    """z2jh's egress rules for its servers, in the user's namespace (issue 12, part 2): the
    API server's addresses are opened one by one, not all private IPs."""
    api = [("10.43.0.1", 443), ("192.168.1.10", 6443)]
    objects = tenant_objects("facility", "alice", "hub", api_server=api)
    [egress] = [o["spec"] for o in objects if o["metadata"]["name"] == "egress"]
    assert egress["podSelector"] == {} and egress["policyTypes"] == ["Egress"]
    blocks = [
        (peer["ipBlock"], rule.get("ports"))
        for rule in egress["egress"]
        for peer in rule.get("to", [])
        if "ipBlock" in peer
    ]
    opened = {block["cidr"]: ports for block, ports in blocks if "except" not in block}
    assert opened == {
        "10.43.0.1/32": [{"port": 443, "protocol": "TCP"}],
        "192.168.1.10/32": [{"port": 6443, "protocol": "TCP"}],
    }
    [internet] = [block for block, _ in blocks if block["cidr"] == "0.0.0.0/0"]
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(
        internet["except"]
    )
    hub = next(r for r in egress["egress"] if r.get("ports") == [{"port": 8081, "protocol": "TCP"}])
    assert hub["to"][0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "facility"}
    }


def test_a_hub_beside_the_cluster_is_opened_to_users_pods_at_its_address_alone(kube_config):
    """A hub outside the cluster (a VM, or the e2e tests' process beside the node) has no pod
    labels to select: its API's address is opened, one address and port, and nothing more; a
    hub reached by name (z2jh's http://hub:8081) is selected by its pods' labels only."""
    spawner, _ = asyncio.run(_manifest(kube_config, {}))
    spawner.hub.api_url = "http://10.20.30.40:8081/hub/api"
    assert spawner.hub_addresses() == [("10.20.30.40", 8081)]
    objects = tenant_objects("facility", "alice", "hub", hub=spawner.hub_addresses())
    [egress] = [o["spec"] for o in objects if o["metadata"]["name"] == "egress"]
    opened = [rule for rule in egress["egress"] if "10.20.30.40/32" in str(rule)]
    assert opened == [
        {
            "to": [{"ipBlock": {"cidr": "10.20.30.40/32"}}],
            "ports": [{"port": 8081, "protocol": "TCP"}],
        }
    ]
    spawner.hub.api_url = "http://hub:8081/hub/api"
    assert spawner.hub_addresses() == []


def test_users_pods_reach_the_facilitys_xcache_only_when_the_site_runs_one(tmp_path, monkeypatch):
    """xcachePorts opens those ports of the facility namespace's XCache pods (selected by
    namespace and labels, as the hub is), nothing else; without it no rule is added."""
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", secrets.token_hex(32))
    (tmp_path / "secret").write_text("s3cret")
    iam = {
        "issuer": "https://iam.example.org/",
        "clientId": "hub",
        "clientSecretFile": str(tmp_path / "secret"),
        "allowedGroups": ["cms"],
    }
    kube = {"namespace": "facility", "xcachePorts": [1094, 8443]}
    c = Config()
    configure(c, load_settings({"backend": "kubernetes", "iam": iam, "kubernetes": kube}))
    assert c.FacilityKubeSpawner.xcache_ports == [1094, 8443]
    with pytest.raises(FacilityConfigError, match="xcachePorts: expected a list of port"):
        load_settings({"backend": "kubernetes", "iam": iam, "kubernetes": {"xcachePorts": "1094"}})

    def egress(**options) -> list[dict]:
        objects = tenant_objects("facility", "alice", "hub", **options)
        for manifest in objects:
            kubernetes_validate.validate(manifest, "1.32", strict=True)
        [policy] = [o["spec"] for o in objects if o["metadata"]["name"] == "egress"]
        return policy["egress"]

    without = egress()
    with_cache = egress(xcache_ports=c.FacilityKubeSpawner.xcache_ports)
    [added] = [rule for rule in with_cache if rule not in without]
    assert added == {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "facility"}},
                "podSelector": {
                    "matchLabels": {
                        "app.kubernetes.io/name": "analysis-facility",
                        "app.kubernetes.io/component": "xcache",
                    }
                },
            }
        ],
        "ports": [{"port": 1094, "protocol": "TCP"}, {"port": 8443, "protocol": "TCP"}],
    }
    assert len(with_cache) == len(without) + 1


def test_dashboards_of_users_schedulers_and_nothing_else_go_through_the_proxy(kube_config):
    link = kube_config.FacilityKubeSpawner.facility_environment["DASK_DISTRIBUTED__DASHBOARD__LINK"]
    assert link == "{JUPYTERHUB_SERVICE_PREFIX}proxy/{host}:{port}/status"
    alice = {"FACILITY_DASK_NAMESPACE": "facility-u-alice"}
    for host in (
        "dask-alice-scheduler",
        "dask-alice-scheduler.facility-u-alice",
        "localhost",
        "my-second-cluster-scheduler.facility-u-alice.svc.cluster.local",
    ):
        assert dashboard_host_allowed(None, host, alice), host
    for host in (
        "hub",
        "proxy-public.facility",
        "kubernetes.default.svc",
        "169.254.169.254",
        "dask-alice-scheduler.evil.example.org",
        "dask-bob-scheduler.facility-u-bob",  # another user's
        "dask-bob-scheduler.facility-u-bob.svc.cluster.local",
    ):
        assert not dashboard_host_allowed(None, host, alice), host


def test_kubernetes_servers_welcome_their_new_home_themselves(kube_config):
    """The hub cannot reach a user's home volume: the server's postStart hook writes the
    welcome README the hub gives it (tests/test_hub_branding.py runs the hook)."""
    _, pod = asyncio.run(_manifest(kube_config, {}))
    container = pod["spec"]["containers"][0]
    hook = container["lifecycle"]["postStart"]["exec"]["command"]
    assert hook == ["python3", "-m", "hub_config.welcome"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["FACILITY_WELCOME"].startswith("# Welcome to Analysis Facility")
    assert "/opt/facility/sample" in env["FACILITY_WELCOME"]
