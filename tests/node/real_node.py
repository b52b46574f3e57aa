"""The real node as a session fixture, and small helpers to run pods of the busybox test image
on it, shared by tests/node and tests/e2e (``from tests.node.real_node import node``).

One node per test session whichever conftests import the fixture: a second Node cannot start
beside the first (it would claim the same interface and fixed paths).
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from charts.node.node import BUSYBOX_IMAGE, Node

_shared: dict = {"node": None, "users": 0}


@pytest.fixture(scope="session")
def node(tmp_path_factory):
    """A running node (control plane, containerd, kubelet, Cilium, kube-proxy, CoreDNS,
    local-path), stopped and cleaned when the session ends. Fails, never skips, where the
    machine cannot run it: the error says what is missing."""
    if _shared["node"] is None:
        # Mounted Secrets follow their objects within seconds (a kubelet's default: about a
        # minute), so that the e2e tests see a refreshed token reach running pods quickly.
        quick = {"syncFrequency": "5s"}
        _shared["node"] = Node(tmp_path_factory.mktemp("node"), kubelet_config=quick).start()
    _shared["users"] += 1
    yield _shared["node"]
    _shared["users"] -= 1
    if _shared["users"] == 0:
        _shared["node"].stop()
        _shared["node"] = None


def kubectl(node: Node, *args: str, stdin: str | None = None) -> str:
    done = node.kubectl(*args, stdin=stdin)
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def apply(node: Node, *objects: dict) -> None:
    kubectl(
        node,
        "apply",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}),
    )


def busybox_pod(
    name: str, namespace: str, command: str, labels: dict | None = None, **spec
) -> dict:
    """A pod of the busybox test image running ``command`` with ``sh -c``."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "main",
                    "image": BUSYBOX_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", command],
                    **spec.pop("container", {}),
                }
            ],
            **spec,
        },
    }


def server_pod(name: str, namespace: str, labels: dict | None = None, port: int = 8080) -> dict:
    """busybox's httpd serving the pod's name on ``port``."""
    command = f"mkdir -p /www && echo {name} > /www/index.html && exec httpd -f -p {port} -h /www"
    return busybox_pod(name, namespace, command, labels)


def wait_running(node: Node, namespace: str, *names: str, timeout: int = 120) -> None:
    kubectl(
        node,
        "wait",
        "-n",
        namespace,
        "--for=condition=Ready",
        f"--timeout={timeout}s",
        *(f"pod/{name}" for name in names),
    )


def pod_ip(node: Node, namespace: str, name: str) -> str:
    return kubectl(node, "get", "pod", "-n", namespace, name, "-o", "jsonpath={.status.podIP}")


def run_in(node: Node, namespace: str, pod: str, *command: str) -> subprocess.CompletedProcess:
    """``kubectl exec`` of ``command``; the result, whatever its exit status."""
    return node.kubectl("exec", "-n", namespace, pod, "--", *command)


def wait_succeeded(node: Node, namespace: str, name: str, timeout: float = 120) -> str:
    """The log of a pod that ran to completion; fails with its phase and log otherwise."""
    deadline = time.monotonic() + timeout
    phase = ""
    while time.monotonic() < deadline:
        phase = kubectl(node, "get", "pod", "-n", namespace, name, "-o", "jsonpath={.status.phase}")
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(0.5)
    log = node.kubectl("logs", "-n", namespace, name).stdout
    assert phase == "Succeeded", f"pod {namespace}/{name} is {phase or 'unknown'}: {log}"
    return log
