"""The chart's install and upgrade, every object validated by the API server, and the
namespace's limits enforced."""

from __future__ import annotations

import asyncio
import json

import pytest
from cluster_api import NAMESPACE, account_kubeconfig, create, helm, release
from kubernetes_asyncio.client import CoreV1Api
from kubernetes_asyncio.config import new_client_from_config

from analysis_kernels.clusters import CONTAINER_SECURITY, POD_SECURITY
from hub_config.iam_secret import copy_client_secret

pytestmark = pytest.mark.slow


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


def test_the_hubs_account_copies_the_client_secret_from_the_secret_named(cluster, hub, tmp_path):
    """The hub pod's init container (hub_config.iam_secret) with the hub's own rights: the
    chart's Secret, then a site's Secret named by iam.existingSecret, missing at first."""
    kubeconfig = account_kubeconfig(cluster, "hub", tmp_path / "hub.kubeconfig")
    ref = tmp_path / "ref"
    ref.mkdir()

    async def copy(name: str) -> str:
        (ref / "secretName").write_text(name)
        async with await new_client_from_config(str(kubeconfig)) as api:
            return await copy_client_secret(CoreV1Api(api), NAMESPACE, ref, tmp_path)

    assert asyncio.run(copy("analysis-facility-iam")) == "analysis-facility-iam"
    assert (tmp_path / "client-secret").read_text() == "change-me"  # minimal-values.yaml's
    with pytest.raises(SystemExit, match="site-iam not found: create it with key client-secret"):
        asyncio.run(copy("site-iam"))
    site = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "site-iam"}}
    made = create(cluster, site | {"stringData": {"client-secret": "from-the-site"}})
    assert made.returncode == 0, made.stderr
    asyncio.run(copy("site-iam"))
    assert (tmp_path / "client-secret").read_text() == "from-the-site"


def test_each_users_quota_and_limits_are_enforced(cluster, users):
    namespace = users["alice"]["namespace"]
    quota = json.loads(
        cluster.kubectl(
            "get", "resourcequota", "facility-user", "-n", namespace, "-o", "json"
        ).stdout
    )
    assert quota["spec"]["hard"]["limits.cpu"] == "32"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "greedy"},
        "spec": {
            "securityContext": POD_SECURITY,
            "containers": [
                {
                    "name": "c",
                    "image": "analysis:1",
                    "securityContext": CONTAINER_SECURITY,
                    "resources": {"limits": {"cpu": "64", "memory": "1Gi"}},
                }
            ],
        },
    }
    result = create(cluster, pod, namespace=namespace)
    assert result.returncode != 0
    assert "maximum cpu usage per Container is 16" in result.stderr
