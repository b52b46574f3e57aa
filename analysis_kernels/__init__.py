"""Columnar HEP analyses (uproot + awkward + hist), their data generators, and one executor.

The three benchmark analyses of the ICSC High-Rate Analysis Platform run through
:func:`analysis_kernels.executor.run` serially, on a Dask ``LocalCluster``, on any running
scheduler, or on a ``KubeCluster``, with identical results.

The names below are imported on first use: the hub, the Dask scheduler and every Python
start in the image (``ssl_error_queue``) import small modules of this package, and should
not pay for awkward, numba and uproot.
"""

from importlib import import_module

_HOMES = {
    "ANALYSES": "analysis_kernels.analyses",
    "get_analysis": "analysis_kernels.analyses",
    "Report": "analysis_kernels.executor",
    "run": "analysis_kernels.executor",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'analysis_kernels' has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
