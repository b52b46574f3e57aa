"""Study 7: the dask operator at facility scale, on the test control plane (``make cluster``).

U users each own a notebook pod and a DaskCluster of W workers (the facility's own spec,
``analysis_kernels.clusters.kube_cluster_spec``), on N nodes simulated by kwok. All clusters
are created within seconds, as when a lecture starts. Measured per cluster, from the API
server's own timestamps (1 s resolution): the time from its creation to the operator's first
reconcile (its scheduler Deployment created) and to all its pods Ready; for the API server,
the requests it served (its own metrics); and the CPU each control-plane process and the
operator spent. kwok runs no containers, so this is the control plane's share of the work
and nothing of Dask's.
"""

from __future__ import annotations

import datetime
import json
import re
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from analysis_kernels.clusters import OWNER_LABEL, cluster_name, kube_cluster_spec
from benchmarks.common import percentile, save
from charts.cluster.controlplane import ControlPlane
from charts.offline_chart import OPERATOR_CHART

NAMESPACE = "analysis"
REQUESTS = re.compile(r"^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$", re.M)


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
            "FACILITY_DASK_CLUSTER_NAME": cluster_name(owner),
            "FACILITY_DASK_IMAGE": "analysis:1",
            "FACILITY_DASK_NAMESPACE": NAMESPACE,
            "FACILITY_TOKEN_SECRET": f"jupyter-{owner}-iam-token",
            "FACILITY_TOKEN_MOUNT": mount,
            "FACILITY_DASK_TLS_SECRET": "dask-tls",
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
    by_verb: dict[str, float] = {}
    for labels, value in REQUESTS.findall(plane.get("/metrics").decode()):
        verb = re.search(r'verb="([^"]*)"', labels).group(1)
        by_verb[verb] = by_verb.get(verb, 0) + float(value)
    return by_verb


def _cpu(processes: dict[str, psutil.Process]) -> dict[str, float]:
    return {name: sum(p.cpu_times()[:2]) for name, p in processes.items()}


def _items(plane: ControlPlane, kind: str) -> list[dict]:
    got = plane.kubectl("get", kind, "-n", NAMESPACE, "-o", "json")
    return json.loads(got.stdout)["items"] if got.returncode == 0 else []


def _stamp(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _dask_pods(plane: ControlPlane) -> list[dict]:
    return [p for p in _items(plane, "pods") if "dask.org/cluster-name" in p["metadata"]["labels"]]


def _wait_running(plane: ControlPlane, expected: int, timeout: float) -> None:
    """Until ``expected`` Dask pods run: a poll every 5 s for their metadata only, one
    request each time, counted in the API server's load like any client's."""
    path = (
        f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector=dask.org/cluster-name"
        "&fieldSelector=status.phase=Running"
    )
    metadata_only = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(json.loads(plane.get(path, metadata_only))["items"] or []) >= expected:
            return
        time.sleep(5)


def _latencies(plane: ControlPlane, workers: int) -> tuple[list[float], list[float]]:
    """Per cluster: creation to its scheduler Deployment's creation, and to the last of its
    pods turning Ready."""
    created = {
        c["metadata"]["name"]: _stamp(c["metadata"]["creationTimestamp"])
        for c in _items(plane, "daskclusters")
    }
    reconciled = {}
    for deployment in _items(plane, "deployments"):
        cluster = deployment["metadata"]["name"].removesuffix("-scheduler")
        if cluster in created:
            reconciled[cluster] = _stamp(deployment["metadata"]["creationTimestamp"])
    ready: dict[str, list[float]] = {}
    for pod in _dask_pods(plane):
        for condition in pod["status"].get("conditions", []):
            if condition["type"] == "Ready" and condition["status"] == "True":
                cluster = pod["metadata"]["labels"]["dask.org/cluster-name"]
                ready.setdefault(cluster, []).append(_stamp(condition["lastTransitionTime"]))
    first = [reconciled[c] - created[c] for c in reconciled]
    complete = [max(t) - created[c] for c, t in ready.items() if len(t) == workers + 1]
    return first, complete


def _prepare(plane: ControlPlane, owners: list[str]) -> dict[str, str]:
    """The namespace, the dask CRDs and each user's notebook pod; their UIDs by owner."""
    plane.kubectl("create", "namespace", NAMESPACE)
    crds = plane.kubectl("apply", "--server-side", "-f", str(OPERATOR_CHART / "crds"))
    if crds.returncode != 0:
        raise RuntimeError(crds.stderr)
    plane.kubectl("wait", "--for=condition=established", "--timeout=60s", "crd", "--all")
    for _ in range(60):  # the namespace's default ServiceAccount comes a moment later
        if plane.kubectl("get", "serviceaccount", "default", "-n", NAMESPACE).returncode == 0:
            break
        time.sleep(1)
    _apply(plane, [_server_pod(o) for o in owners])
    return {
        p["metadata"]["labels"][OWNER_LABEL]: p["metadata"]["uid"] for p in _items(plane, "pods")
    }


def measure(
    users: int = 200, workers: int = 10, nodes: int = 50, controller_qps: int = 0, timeout=1800
) -> dict:
    """``controller_qps``: the controller manager's client rate limit (0: Kubernetes' default,
    20 requests/s), which makes the operator's one Deployment per worker into pods."""
    owners = [f"physicist{i:03d}" for i in range(users)]
    qps = [f"--kube-api-qps={controller_qps}", f"--kube-api-burst={2 * controller_qps}"]
    plane = ControlPlane(
        Path(tempfile.mkdtemp(prefix="operator-scale-")),
        nodes=nodes,
        controller_manager_args=qps if controller_qps else [],
    )
    with plane:
        uids = _prepare(plane, owners)
        plane.start_dask_operator(NAMESPACE)
        watched = {name: psutil.Process(p.pid) for name, p in plane.by_name.items()}
        cpu_before, requests_before = _cpu(watched), _requests(plane)
        started = time.time()
        with ThreadPoolExecutor(max_workers=8) as pool:
            specs = [_cluster_spec(o, uids[o], workers) for o in owners]
            list(pool.map(lambda spec: _apply(plane, [spec]), specs))
        creation_s = time.time() - started
        _wait_running(plane, users * (workers + 1), timeout)
        wall = time.time() - started
        cpu = {k: v - cpu_before[k] for k, v in _cpu(watched).items()}
        requests_after = _requests(plane)
        reconcile, running = _latencies(plane, workers)
    requests = {v: requests_after[v] - requests_before.get(v, 0) for v in requests_after}
    result = {
        "controller_qps": controller_qps or 20,
        "users": users,
        "workers_per_cluster": workers,
        "nodes": nodes,
        "clusters_running": len(running),
        "creation_s": creation_s,
        "wall_s": wall,
        "first_reconcile_p50_s": statistics.median(reconcile),
        "first_reconcile_p95_s": percentile(reconcile, 95),
        "all_running_p50_s": statistics.median(running),
        "all_running_p95_s": percentile(running, 95),
        "all_running_max_s": max(running),
        "apiserver_requests": sum(requests.values()),
        "apiserver_requests_per_s": sum(requests.values()) / wall,
        "apiserver_requests_by_verb": requests,
        "cpu_s": cpu,
        "cpu_share": {k: v / wall for k, v in cpu.items()},
    }
    print(
        f"  {users} clusters x {workers} workers on {nodes} nodes, controller manager at"
        f" {result['controller_qps']} requests/s: {len(running)} all Ready;"
        f" first reconcile p50 {result['first_reconcile_p50_s']:.0f}s p95 {result['first_reconcile_p95_s']:.0f}s;"
        f" all pods Ready p50 {result['all_running_p50_s']:.0f}s p95 {result['all_running_p95_s']:.0f}s;"
        f" API server {result['apiserver_requests_per_s']:.0f} req/s;"
        f" CPU s: {', '.join(f'{k} {v:.0f}' for k, v in cpu.items())}"
    )
    save(f"operator_scale_qps{controller_qps}" if controller_qps else "operator_scale", result)
    return result
