"""Jupyter server settings of the analysis image (installed in /etc/jupyter)."""

from analysis_kernels.clusters import dashboard_host_allowed

c = get_config()  # noqa: F821 - provided by Jupyter when it loads this file
# The Dask dashboard of the user's KubeCluster opens inside JupyterLab through the proxy.
c.ServerProxy.host_allowlist = dashboard_host_allowed
