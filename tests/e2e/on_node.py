"""Reading the real node's objects from the e2e tests."""

from __future__ import annotations

import functools
import json

from tests.cluster import cluster_api

ANALYSIS_IMAGE = "ghcr.io/analysis-facility/analysis:0.1.0"


# Pods on the real node start slower than kwok's: a longer default wait.
wait_for = functools.partial(cluster_api.wait_for, timeout=180)


def get(node, kind: str, name: str, namespace: str) -> dict | None:
    done = node.kubectl("get", kind, name, "-n", namespace, "-o", "json")
    return json.loads(done.stdout) if done.returncode == 0 else None


def pods(node, namespace: str, selector: str = "") -> list[dict]:
    args = ["get", "pods", "-n", namespace, "-o", "json", *(["-l", selector] if selector else [])]
    done = node.kubectl(*args)
    return json.loads(done.stdout)["items"] if done.returncode == 0 else []
