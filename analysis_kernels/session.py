"""The user's Dask cluster from a notebook: the one the JupyterLab Dask sidebar shows.

The sidebar (dask-labextension) keeps its clusters in the Jupyter server, made by the facility's
factory (``analysis_kernels.clusters.facility_cluster``). :func:`user_client` asks that server
through the sidebar's own API for its cluster, and makes one there when there is none, so the
notebook and the sidebar share one cluster whichever came first, and its dashboard shows the
notebook's work. Nothing names a scheduler address, so a notebook re-run after its server
restarted gets the new server's cluster instead of timing out on the old one. Outside a Jupyter
server (a script, nbclient) it starts ``facility_cluster()`` in this process.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from distributed import Client


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the parent, after "(comm) state"
        pids.add(pid)
    return pids


def jupyter_server() -> dict | None:
    """The Jupyter server this kernel runs under (its runtime file: url, token), if any."""
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return None
    ancestors = _ancestors()
    return next((s for s in list_running_servers() if s.get("pid") in ancestors), None)


def _sidebar_api(server: dict, method: str = "GET") -> dict | list:
    # Under JupyterHub the server's own API token opens the server (access:servers!server).
    token = os.environ.get("JUPYTERHUB_API_TOKEN") or server.get("token", "")
    request = urllib.request.Request(
        server["url"].rstrip("/") + "/dask/clusters/",
        method=method,
        headers={"Authorization": f"token {token}"} if token else {},
        data=b"" if method == "PUT" else None,
    )
    with urllib.request.urlopen(request, timeout=300) as reply:
        return json.loads(reply.read())


def sidebar_cluster(server: dict) -> dict:
    """The model (``scheduler_address``, ``dashboard_link``...) of the sidebar's cluster,
    made through the sidebar when it has none."""
    clusters = _sidebar_api(server)
    return clusters[0] if clusters else _sidebar_api(server, "PUT")


def user_client(server: dict | None = None) -> Client:
    """A client of the user's cluster: the sidebar's, or one of this process outside Jupyter."""
    server = server or jupyter_server()
    if server is not None:
        try:
            return Client(sidebar_cluster(server)["scheduler_address"], timeout="30s")
        except urllib.error.URLError as err:
            warnings.warn(
                f"the Dask sidebar's API at {server['url']} did not answer ({err}); using a "
                "cluster of this kernel instead, which the sidebar does not show",
                stacklevel=2,
            )
    from analysis_kernels.clusters import facility_cluster

    return Client(facility_cluster())
