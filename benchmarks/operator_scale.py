"""Study 7: the dask operator at facility scale, on the test control plane (``make cluster``).

U users each own a notebook pod and a DaskCluster of W workers (the facility's own spec,
``analysis_kernels.clusters.kube_cluster_spec``), on N nodes simulated by kwok. All clusters
are created within a few seconds, as when a lecture starts. Measured per cluster: the time
from its creation to the operator's first reconcile (its scheduler Deployment exists) and to
all its pods running; for the API server: requests served (its own metrics), and the CPU the
API server, etcd and the operator spent. kwok runs no containers, so this is the control
plane's share of the work and nothing of Dask's.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from analysis_kernels.clusters import OWNER_LABEL, kube_cluster_spec
from benchmarks.common import save
from charts.cluster.controlplane import ControlPlane
from charts.offline_chart import OPERATOR_CHART

NAMESPACE = "analysis"
REQUESTS = re.compile(r"^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$", re.M)


def _percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _apply(plane: ControlPlane, items: list[dict]) -> None:
    listed = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    done = plane.kubectl("create", "-n", NAMESPACE, "-f", "-", stdin=listed)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)


def _server_pod(owner: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"jupyter-{owner}", "labels": {OWNER_LABEL: owner}},
        "spec": {"containers": [{"name": "notebook", "image": "analysis:1"}]},
    }


def _cluster_spec(owner: str, uid: str, workers: int) -> dict:
    mount = "/var/run/secrets/facility"
    spec = kube_cluster_spec(
        {
            "FACILITY_DASK_CLUSTER_NAME": f"dask-{owner}",
            "FACILITY_DASK_IMAGE": "analysis:1",
            "FACILITY_DASK_NAMESPACE": NAMESPACE,
            "FACILITY_TOKEN_SECRET": f"jupyter-{owner}-iam-token",
            "FACILITY_TOKEN_MOUNT": mount,
            "FACILITY_POD_NAME": f"jupyter-{owner}",
            "FACILITY_POD_UID": uid,
            "FACILITY_OWNER": owner,
            "BEARER_TOKEN_FILE": f"{mount}/bearer_token",
        }
    )
    spec["spec"]["worker"]["replicas"] = workers
    return spec


def _requests(plane: ControlPlane) -> dict[str, float]:
    """The API server's request counters, summed by verb."""
    context = ssl.create_default_context(cafile=str(plane.pki / "ca.crt"))
    context.load_cert_chain(plane.pki / "admin.crt", plane.pki / "admin.key")
    with urllib.request.urlopen(f"{plane.server}/metrics", context=context, timeout=30) as r:
        text = r.read().decode()
    by_verb: dict[str, float] = {}
    for labels, value in REQUESTS.findall(text):
        verb = re.search(r'verb="([^"]*)"', labels).group(1)
        by_verb[verb] = by_verb.get(verb, 0) + float(value)
    return by_verb


def _cpu(processes: dict[str, psutil.Process]) -> dict[str, float]:
    return {name: sum(p.cpu_times()[:2]) for name, p in processes.items()}


def _items(plane: ControlPlane, kind: str) -> list[dict]:
    got = plane.kubectl("get", kind, "-n", NAMESPACE, "-o", "json")
    return json.loads(got.stdout)["items"] if got.returncode == 0 else []


def _watch(plane: ControlPlane, owners: list[str], workers: int, timeout: float) -> dict:
    """When each cluster's scheduler Deployment appeared and all its pods ran (a poll every
    2 s through kubectl, whose own requests count towards the API server's load)."""
    first_reconcile: dict[str, float] = {}
    all_running: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(all_running) < len(owners) and time.monotonic() < deadline:
        now = time.time()
        for deployment in _items(plane, "deployments"):
            name = deployment["metadata"]["name"]
            if name.endswith("-scheduler"):
                first_reconcile.setdefault(
                    name.removeprefix("dask-").removesuffix("-scheduler"), now
                )
        running: dict[str, int] = {}
        for pod in _items(plane, "pods"):
            labels = pod["metadata"].get("labels", {})
            if "dask.org/cluster-name" in labels and pod["status"].get("phase") == "Running":
                owner = labels.get(OWNER_LABEL, "")
                running[owner] = running.get(owner, 0) + 1
        for owner, count in running.items():
            if count >= workers + 1:
                all_running.setdefault(owner, now)
        time.sleep(2)
    return {"first_reconcile": first_reconcile, "all_running": all_running}


def measure(users: int = 200, workers: int = 10, nodes: int = 50, timeout: float = 1800) -> dict:
    root = Path(tempfile.mkdtemp(prefix="operator-scale-"))
    with ControlPlane(root, nodes=nodes) as plane:
        plane.kubectl("create", "namespace", NAMESPACE)
        crds = plane.kubectl("apply", "--server-side", "-f", str(OPERATOR_CHART / "crds"))
        if crds.returncode != 0:
            raise RuntimeError(crds.stderr)
        plane.kubectl("wait", "--for=condition=established", "--timeout=60s", "crd", "--all")
        log = open(plane.logs / "dask-operator.log", "ab")  # noqa: SIM115 - the process owns it
        operator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kopf",
                "run",
                "--standalone",
                "--namespace",
                NAMESPACE,
                "-m",
                "dask_kubernetes.operator.controller",
            ],
            env=os.environ | {"KUBECONFIG": str(plane.kubeconfig)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            owners = [f"physicist{i:03d}" for i in range(users)]
            for _ in range(60):  # the namespace's default ServiceAccount comes a moment later
                if (
                    plane.kubectl("get", "serviceaccount", "default", "-n", NAMESPACE).returncode
                    == 0
                ):
                    break
                time.sleep(1)
            _apply(plane, [_server_pod(o) for o in owners])
            uids = {
                p["metadata"]["labels"][OWNER_LABEL]: p["metadata"]["uid"]
                for p in _items(plane, "pods")
            }
            processes = plane.by_name | {"operator": operator}
            watched = {name: psutil.Process(p.pid) for name, p in processes.items()}
            cpu_before, requests_before = _cpu(watched), _requests(plane)
            created: dict[str, float] = {}

            def create(owner: str) -> None:
                _apply(plane, [_cluster_spec(owner, uids[owner], workers)])
                created[owner] = time.time()

            started = time.time()
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(create, owners))
            creation_s = time.time() - started
            watched_times = _watch(plane, owners, workers, timeout)
            wall = time.time() - started
            cpu = {k: v - cpu_before[k] for k, v in _cpu(watched).items()}
            requests_after = _requests(plane)
        finally:
            operator.terminate()
            operator.wait(timeout=30)
    requests = {v: requests_after[v] - requests_before.get(v, 0) for v in requests_after}
    reconcile = [
        watched_times["first_reconcile"][o] - created[o]
        for o in watched_times["first_reconcile"]
        if o in created
    ]
    running = [watched_times["all_running"][o] - created[o] for o in watched_times["all_running"]]
    result = {
        "users": users,
        "workers_per_cluster": workers,
        "nodes": nodes,
        "clusters_running": len(running),
        "creation_s": creation_s,
        "wall_s": wall,
        "first_reconcile_p50_s": statistics.median(reconcile),
        "first_reconcile_p95_s": _percentile(reconcile, 95),
        "all_running_p50_s": statistics.median(running),
        "all_running_p95_s": _percentile(running, 95),
        "all_running_max_s": max(running),
        "apiserver_requests": sum(requests.values()),
        "apiserver_requests_per_s": sum(requests.values()) / wall,
        "apiserver_requests_by_verb": requests,
        "cpu_s": cpu,
        "cpu_share": {k: v / wall for k, v in cpu.items()},
    }
    print(
        f"  {users} clusters x {workers} workers on {nodes} nodes: {len(running)} running;"
        f" first reconcile p50 {result['first_reconcile_p50_s']:.1f}s p95 {result['first_reconcile_p95_s']:.1f}s;"
        f" all pods running p50 {result['all_running_p50_s']:.1f}s p95 {result['all_running_p95_s']:.1f}s;"
        f" API server {result['apiserver_requests_per_s']:.0f} req/s,"
        f" CPU s: {', '.join(f'{k} {v:.0f}' for k, v in cpu.items())}"
    )
    save("operator_scale", result)
    return result
