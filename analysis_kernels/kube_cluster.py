"""The facility's KubeCluster: dask-kubernetes' own, speaking TLS to the user's scheduler and
waiting for the operator differently.

The user's scheduler accepts only TLS with the user's certificate (``dask_tls``), and upstream's
KubeCluster connects to ``tcp://`` addresses with no TLS arguments; the address it is handed is
``facility-tls://``, which takes the certificate from Dask's configuration (the hub's
``DASK_DISTRIBUTED__COMM__TLS__*``).

dask-kubernetes 2026.3.0 (the latest release) waits for its DaskCluster's phase to be
``Running``. Its operator sets ``Running`` when the scheduler's Service appears and then, at
the end of the same creation, may write ``Pending`` over it; for a ClusterIP Service nothing
changes it again, and ``KubeCluster()`` waits until its timeout (dask/dask-kubernetes#968,
fixed by #977, not yet released; the control-plane tests hit it on most runs). Either phase
means the operator has made the scheduler, worker group and Service; the waits that follow
(scheduler pod ready, Service ready, scheduler answering) are upstream's own.
"""

from __future__ import annotations

import asyncio
import time

import dask
from dask_kubernetes.operator import KubeCluster
from dask_kubernetes.operator._objects import DaskCluster

from analysis_kernels.dask_tls import SCHEME

ACTIONED = ("Pending", "Running")


class FacilityKubeCluster(KubeCluster):
    async def _get_scheduler_address(self):
        address = await super()._get_scheduler_address()
        if dask.config.get("distributed.comm.require-encryption"):
            return address.replace("tcp://", f"{SCHEME}://", 1)
        return address

    async def _wait_for_controller(self):
        start = time.time()
        cluster = await DaskCluster.get(self.name, namespace=self.namespace, timeout=30)
        while start + self._resource_timeout > time.time():
            await cluster.async_refresh()
            if cluster.raw.get("status", {}).get("phase") in ACTIONED:
                return
            await asyncio.sleep(0.25)
        raise TimeoutError(
            f"Dask Cluster resource not actioned after {self._resource_timeout} seconds, "
            "is the Dask Operator running?"
        )
