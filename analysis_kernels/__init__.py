"""Columnar HEP analyses (uproot + awkward + hist), their data generators, and one executor.

The three benchmark analyses of the ICSC High-Rate Analysis Platform run through
:func:`analysis_kernels.executor.run` serially, on a Dask ``LocalCluster``, on any running
scheduler, or on a ``KubeCluster``, with identical results.
"""

from analysis_kernels.analyses import ANALYSES, get_analysis
from analysis_kernels.executor import Report, run

__all__ = ["ANALYSES", "Report", "get_analysis", "run"]
