"""Where chunks run: in this process, or on a Dask cluster of any kind, chosen by one string.

- ``serial``: in this process, one chunk after another.
- ``local`` or ``local:N``: a Dask ``LocalCluster`` of N single-threaded worker processes.
- ``tcp://host:port`` (or ``tls://``): an already running Dask scheduler.
- ``kube`` or ``kube:N``: a ``dask_kubernetes.operator.KubeCluster`` with N workers.
A ``distributed.Client`` may be passed instead of a string.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from distributed import Client, LocalCluster


def _count(spec: str, default: int) -> int:
    _, _, n = spec.partition(":")
    if not n:
        return default
    if not n.isdigit() or int(n) < 1:
        raise ValueError(
            f"executor {spec!r}: the worker count after ':' must be a positive integer"
        )
    return int(n)


def _kube_cluster(n_workers: int):
    try:
        from dask_kubernetes.operator import KubeCluster
    except ImportError as err:
        raise RuntimeError(
            "executor 'kube' needs dask-kubernetes: pip install 'analysis-facility[kube]'"
        ) from err
    options = {
        "n_workers": n_workers,
        "name": os.environ.get("FACILITY_DASK_CLUSTER_NAME", "analysis"),
    }
    if "FACILITY_DASK_IMAGE" in os.environ:
        options["image"] = os.environ["FACILITY_DASK_IMAGE"]
    if "FACILITY_DASK_NAMESPACE" in os.environ:
        options["namespace"] = os.environ["FACILITY_DASK_NAMESPACE"]
    return KubeCluster(**options)


@contextlib.contextmanager
def open_backend(executor: str | Client) -> Iterator[Client | None]:
    """Yield a Dask client for the executor (None for serial); close what we opened."""
    if isinstance(executor, Client):
        yield executor
        return
    if not isinstance(executor, str):
        raise TypeError(
            f"executor must be a string or a distributed.Client, not {type(executor).__name__}"
        )
    if executor == "serial":
        yield None
    elif executor == "local" or executor.startswith("local:"):
        n = _count(executor, os.cpu_count() or 1)
        with (
            LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address="127.0.0.1:0",
                host="127.0.0.1",
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
    elif executor.startswith(("tcp://", "tls://")):
        with Client(executor, timeout="20s") as client:
            yield client
    elif executor == "kube" or executor.startswith("kube:"):
        with _kube_cluster(_count(executor, 2)) as cluster, Client(cluster) as client:
            yield client
    else:
        raise ValueError(
            f"unknown executor {executor!r}; use serial, local[:N], tcp://host:port or kube[:N]"
        )
