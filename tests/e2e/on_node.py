"""Reading the real node's objects from the e2e tests."""

from __future__ import annotations

import json
import time

ANALYSIS_IMAGE = "ghcr.io/analysis-facility/analysis:0.1.0"


def wait_for(check, what: str, timeout: float = 180, every: float = 1):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s"
        time.sleep(every)


def get(node, kind: str, name: str, namespace: str) -> dict | None:
    done = node.kubectl("get", kind, name, "-n", namespace, "-o", "json")
    return json.loads(done.stdout) if done.returncode == 0 else None


def pods(node, namespace: str, selector: str = "") -> list[dict]:
    args = ["get", "pods", "-n", namespace, "-o", "json", *(["-l", selector] if selector else [])]
    done = node.kubectl(*args)
    return json.loads(done.stdout)["items"] if done.returncode == 0 else []
