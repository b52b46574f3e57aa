"""The Dask cluster a user gets on the facility, from the JupyterLab sidebar or from code.

dask-labextension calls ``facility_cluster`` (configured by the hub through
``DASK_LABEXTENSION__FACTORY__*``); a notebook may call it too. On the local facility it is a
``LocalCluster`` sized by the server's profile (``CPU_LIMIT``, ``MEM_LIMIT``); on Kubernetes, a
dask-kubernetes ``KubeCluster`` (``analysis_kernels.kube_cluster``) named after the user, in
the user's namespace, with the user's image, mounting the user's token. Both shut down after
``FACILITY_DASK_IDLE_TIMEOUT`` seconds without work. Workers find the user's IAM token through ``BEARER_TOKEN_FILE``.
"""

from __future__ import annotations

import math
import os
import re

from distributed import LocalCluster


def _number(name: str, default: float, environ=os.environ) -> float:
    value = environ.get(name, "")
    try:
        return float(value) if value else default
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None


def local_cluster(asynchronous: bool = False, **options) -> LocalCluster:
    """A LocalCluster with one single-threaded worker per CPU of the server's profile."""
    cpus = _number("CPU_LIMIT", os.cpu_count() or 1)
    workers = max(1, math.floor(cpus))
    memory = _number("MEM_LIMIT", 0)
    defaults = {
        "n_workers": workers,
        "threads_per_worker": 1,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": "127.0.0.1:0",
        "memory_limit": int(memory / workers) if memory else "auto",
        "scheduler_kwargs": {"idle_timeout": _number("FACILITY_DASK_IDLE_TIMEOUT", 1800)},
    }
    return LocalCluster(asynchronous=asynchronous, **(defaults | options))


OWNER_LABEL = "analysis-facility/owner"
"""Whose a Dask object is: the user's DNS-safe name. The admission policy checks it against the
account that creates the object, and each user's NetworkPolicy opens that user's Dask pods to
pods carrying it."""


def cluster_name(owner: str) -> str:
    """The one Dask cluster a user may have; the user's own Role is granted exactly this name."""
    return f"dask-{owner}"


SCHEDULER_SERVICE = re.compile(
    r"^dask-[a-z0-9-]+-scheduler(\.[a-z0-9-]+)?(\.svc(\.cluster\.local)?)?$"
)


def dashboard_host_allowed(_handler, host: str) -> bool:
    """jupyter-server-proxy's host allowlist in the analysis image: the server may proxy the
    dashboards of users' Dask schedulers (Services named dask-<user>-scheduler), and nothing
    else beyond localhost. Who may reach which scheduler is the network policies' business."""
    return host in ("localhost", "127.0.0.1") or bool(SCHEDULER_SERVICE.match(host))


def kube_cluster_spec(environ: dict[str, str] | None = None) -> dict:
    """The DaskCluster of the user whose server set ``environ`` (the hub's FACILITY_* values).

    Scheduler and workers use the server's image and mount the user's token Secret at the
    same path; the cluster is owned by the user's pod, so it is deleted with it.
    """
    from dask_kubernetes.operator import make_cluster_spec

    env = os.environ if environ is None else environ
    missing = [k for k in KUBE_SETTINGS if not env.get(k)]
    if missing:
        raise ValueError(f"a Kubernetes Dask cluster needs {', '.join(missing)} from the hub")
    mount = env["FACILITY_TOKEN_MOUNT"]
    spec = make_cluster_spec(
        name=env["FACILITY_DASK_CLUSTER_NAME"],
        image=env["FACILITY_DASK_IMAGE"],
        n_workers=0,
        env={"BEARER_TOKEN_FILE": env["BEARER_TOKEN_FILE"]},
        idle_timeout=int(_number("FACILITY_DASK_IDLE_TIMEOUT", 1800, env)),
    )
    # The admission policy lets a user create only clusters with their own name and label, and
    # the user's NetworkPolicy lets only pods with that label reach the cluster's pods.
    spec["metadata"]["labels"] = {OWNER_LABEL: env["FACILITY_OWNER"]}
    spec["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": env["FACILITY_POD_NAME"],
            "uid": env["FACILITY_POD_UID"],
        }
    ]
    volume = {"name": "iam-token", "secret": {"secretName": env["FACILITY_TOKEN_SECRET"]}}
    for role in ("scheduler", "worker"):
        pod = spec["spec"][role]["spec"]
        pod["volumes"] = [volume]
        for container in pod["containers"]:
            container["volumeMounts"] = [
                {"name": "iam-token", "mountPath": mount, "readOnly": True}
            ]
    return spec


KUBE_SETTINGS = (
    "FACILITY_DASK_CLUSTER_NAME",
    "FACILITY_DASK_IMAGE",
    "FACILITY_DASK_NAMESPACE",
    "FACILITY_TOKEN_SECRET",
    "FACILITY_TOKEN_MOUNT",
    "FACILITY_POD_NAME",
    "FACILITY_POD_UID",
    "FACILITY_OWNER",
    "BEARER_TOKEN_FILE",
)


def facility_cluster(asynchronous: bool = False, **options):
    """The user's Dask cluster, for the backend the hub configured (local by default)."""
    backend = os.environ.get("FACILITY_CLUSTER_BACKEND", "local")
    if backend == "local":
        return local_cluster(asynchronous=asynchronous, **options)
    if backend == "kubernetes":
        from analysis_kernels.kube_cluster import FacilityKubeCluster

        return FacilityKubeCluster(
            custom_cluster_spec=kube_cluster_spec(),
            namespace=os.environ["FACILITY_DASK_NAMESPACE"],
            asynchronous=asynchronous,
            **options,
        )
    raise ValueError(f"FACILITY_CLUSTER_BACKEND={backend!r}: use 'local' or 'kubernetes'")
