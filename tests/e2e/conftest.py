"""The facility end to end on the real node (charts/node): the images built here imported into
its containerd, the chart installed with its dask operator running as a pod of the operator
image, and the real hub (development IAM, hub_config for Kubernetes) as a process beside the
node whose API listens on the node's address, where users' pods reach it. z2jh's chart is out
of reach here, so the hub is not a pod (the README says how to run the umbrella by hand)."""

from __future__ import annotations

from pathlib import Path

import pytest

from charts.node.node import ADDRESS
from charts.offline_chart import OPERATOR, copy_chart
from tests.cluster.cluster_api import (
    NAMESPACE,
    account_kubeconfig,
    apply_operator_crds,
    chart_facility_values,
    make_hub_account,
    release,
)
from tests.e2e.on_node import ANALYSIS_IMAGE
from tests.node import real_node

node = real_node.node  # the session's one node, shared with tests/node

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


@pytest.fixture(scope="session")
def installed(node, images, tmp_path_factory) -> Path:
    """The dask CRDs, then the chart with its dask operator subchart; helm waits for the
    operator's pod, which runs the operator image built here."""
    apply_operator_crds(node.plane)
    chart = copy_chart(tmp_path_factory.mktemp("chart"), keep=(OPERATOR,))
    install = release(
        node.plane, "install", chart, "minimal-values.yaml", "--create-namespace",
        "--wait", "--timeout=5m", "--set", f"{OPERATOR}.image.pullPolicy=Never",
    )  # fmt: skip
    assert install.returncode == 0, install.stderr + operator_log(node)
    return chart


def operator_log(node) -> str:
    done = node.kubectl("logs", "-n", NAMESPACE, f"deployment/{OPERATOR}", "--tail=40")
    return done.stdout + done.stderr


@pytest.fixture(scope="session")
def kube_hub(node, installed, tmp_path_factory):
    """The real hub for Kubernetes beside the node, its API on the node's address, its
    KubeSpawner acting as z2jh's hub account; tokens refreshed every few seconds so that a test
    sees a refresh reach the running pods."""
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
