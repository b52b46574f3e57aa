"""The chart's install and upgrade, every object validated by the API server, and the
namespace's limits enforced."""

from __future__ import annotations

import json

import pytest
from cluster_api import NAMESPACE, create, helm, release

from analysis_kernels.clusters import CONTAINER_SECURITY, POD_SECURITY

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
