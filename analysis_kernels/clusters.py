"""The Dask cluster a user gets on the facility, from the JupyterLab sidebar or from code.

dask-labextension calls ``facility_cluster`` (configured by the hub through
``DASK_LABEXTENSION__FACTORY__*``); a notebook may call it too. On the local facility it is a
``LocalCluster`` sized by the server's profile (``CPU_LIMIT``, ``MEM_LIMIT``); on Kubernetes, a
``dask_kubernetes.operator.KubeCluster`` named after the user, in the user's namespace, with the
user's image, mounting the user's token. Both shut down after ``FACILITY_DASK_IDLE_TIMEOUT``
seconds without work. Workers find the user's IAM token through ``BEARER_TOKEN_FILE``.
"""

from __future__ import annotations

import math
import os

from distributed import LocalCluster


def _number(name: str, default: float) -> float:
    value = os.environ.get(name, "")
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


def facility_cluster(asynchronous: bool = False, **options):
    """The user's Dask cluster, for the backend the hub configured (local by default)."""
    backend = os.environ.get("FACILITY_CLUSTER_BACKEND", "local")
    if backend == "local":
        return local_cluster(asynchronous=asynchronous, **options)
    raise ValueError(
        f"FACILITY_CLUSTER_BACKEND={backend!r}: only 'local' clusters are available until the "
        "Kubernetes facility is installed"
    )
