"""The facility end to end on the real node (charts/node): the images built here imported into
its containerd, the chart installed with its dask operator running as a pod of the operator
image, and the real hub with the development IAM and hub_config for Kubernetes, reachable by
users' pods.

Where z2jh's chart was brought in (``charts/analysis-facility/charts/``, where ``helm
dependency build`` puts it; never committed), the hub is the whole umbrella's: z2jh's hub and
proxy pods, its NetworkPolicies enforced (tests/e2e/umbrella.py). Otherwise, as in CI, the hub
is a process beside the node whose API listens on the node's address."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from charts.node.node import ADDRESS, Node
from charts.offline_chart import OPERATOR, brought_in, copy_chart
from tests.cluster.cluster_api import (
    NAMESPACE,
    account_kubeconfig,
    apply_operator_crds,
    chart_facility_values,
    make_hub_account,
    release,
)
from tests.e2e.on_node import ANALYSIS_IMAGE
from tests.e2e.umbrella import UmbrellaHub, umbrella_iam, umbrella_values
from tests.node import real_node

node = real_node.node  # the session's one node, shared with tests/node

Z2JH = brought_in("jupyterhub")


def pytest_report_header() -> str:
    where = f"the umbrella's pods (z2jh's chart: {Z2JH})" if Z2JH else "beside the node"
    return f"e2e hub: {where}"


CHART_KUBERNETES = chart_facility_values()
# Small servers, so that two users' servers and a Dask cluster fit the node's two cores.
PROFILES = [
    {"slug": "e2e", "displayName": "E2E: 0.4 CPU, 1.5 GiB", "cpu": 0.4, "memory": "1.5G",
     "default": True},
]  # fmt: skip
HOME = [
    '--KubeSpawner.volumes=[{"name": "home", "persistentVolumeClaim": {"claimName": '
    '"{pvc_name}"}}]',
    '--KubeSpawner.volume_mounts=[{"name": "home", "mountPath": "/home/jovyan"}]',
    "--FacilityKubeSpawner.storage_pvc_ensure=True",
    "--FacilityKubeSpawner.pvc_name_template=claim-{user_server}",
    "--FacilityKubeSpawner.storage_capacity=1Gi",
]


@pytest.fixture(scope="session")
def images(node) -> list[str]:
    """The facility's images (make images) in the node's containerd."""
    references = node.import_facility_images()
    assert ANALYSIS_IMAGE in references, f"{ANALYSIS_IMAGE} not built: {references}"
    return references


@dataclass
class Installation:
    """The release the tests installed, with the values to upgrade it by."""

    node: Node
    chart: Path
    values: str
    settings: list[str]

    def release(self, verb: str, *extra: str):
        return release(self.node.plane, verb, self.chart, self.values, *self.settings, *extra)


@pytest.fixture(scope="session")
def iam(tmp_path_factory):
    """For the umbrella, the IAM beside the node (started before the hub pod, which reads its
    discovery at start); None where the hub runs beside the node with an IAM of its own."""
    if not Z2JH:
        yield None
        return
    facility = umbrella_iam(tmp_path_factory.mktemp("e2e-iam"))
    yield facility
    facility.stop()


@pytest.fixture(scope="session")
def installed(node, images, iam, tmp_path_factory) -> Installation:
    """The dask CRDs, then the chart with its dask operator subchart (and z2jh's, where it was
    brought in); helm waits for the pods, which run the images built here."""
    apply_operator_crds(node.plane)
    kept = (OPERATOR, "jupyterhub") if iam else (OPERATOR,)
    chart = copy_chart(tmp_path_factory.mktemp("chart"), keep=kept)
    if iam:
        values, settings = umbrella_values(chart, iam)
    else:
        values, settings = "minimal-values.yaml", ["--set", f"{OPERATOR}.image.pullPolicy=Never"]
    installation = Installation(node, chart, values, settings)
    install = installation.release("install", "--create-namespace", "--wait", "--timeout=8m")
    assert install.returncode == 0, install.stderr + release_story(node)
    return installation


def release_story(node) -> str:
    """The pods and the operator's and hub's last lines, for a failed install's message."""
    listing = node.kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide").stdout
    logs = [
        node.kubectl("logs", "-n", NAMESPACE, f"deployment/{name}", "--tail=40")
        for name in (OPERATOR, "hub")
    ]
    return "\n".join([listing, *(done.stdout + done.stderr for done in logs)])


@pytest.fixture(scope="session")
def kube_hub(node, installed, iam, tmp_path_factory):
    """The umbrella's hub pods where z2jh's chart was brought in; otherwise the real hub for
    Kubernetes beside the node, its API on the node's address, its KubeSpawner acting as z2jh's
    hub account. Either way tokens are refreshed every few seconds so that a test sees a
    refresh reach the running pods."""
    if iam:
        hub = UmbrellaHub(node, iam).start()
        yield hub
        hub.stop()
        return
    from hub_config.local.facility import LocalFacility

    hub = make_hub_account(node.plane)
    assert hub
    state = tmp_path_factory.mktemp("e2e-hub")
    facility = LocalFacility(
        state_dir=state,
        log_dir=state / "logs",
        access_token_ttl=240,
        token_refresh_margin=180,
        token_check_interval=5,
        hub_api_host=ADDRESS,
        extra_settings={
            "backend": "kubernetes",
            "kubernetes": {
                "namespace": NAMESPACE,
                "defaultImage": ANALYSIS_IMAGE,
                # The chart's quota and limits of users' namespaces, as z2jh would pass them.
                "userQuota": CHART_KUBERNETES["userQuota"],
                "userLimits": CHART_KUBERNETES["userLimits"],
            },
            "profiles": PROFILES,
        },
        hub_environment={
            "KUBECONFIG": str(account_kubeconfig(node.plane, "hub", state / "hub.kubeconfig"))
        },
        hub_args=[
            *HOME,
            "--KubeSpawner.image_pull_policy=Never",
            "--JupyterHub.cleanup_servers=False",
            "--FacilityKubeSpawner.http_timeout=120",
            "--FacilityKubeSpawner.start_timeout=300",
        ],
    )
    facility.start()
    yield facility
    facility.stop()
