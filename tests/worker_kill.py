"""Killing a Dask worker process while it executes a given kind of task, for the fault tests.

The victim is the first worker that says it is executing such a task: asked of the workers
themselves, not guessed from the scheduler's view and a delay, which a task faster than the
delay (a batch of cached chunks takes 0.2 s) never gives.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client

from analysis_kernels.executor.processes import DaskProcesses


@contextmanager
def first_worker_killed_executing(cluster: DaskProcesses, marker: str) -> Iterator[list]:
    """SIGKILL the first of ``cluster``'s workers seen executing a task whose key holds
    ``marker``, while the block runs; the list yielded holds its process once killed."""
    killed: list[subprocess.Popen] = []
    finished = threading.Event()

    def executing(dask_worker) -> list[str]:
        return [str(t.key) for t in dask_worker.state.executing if marker in str(t.key)]

    def watch(watcher: Client) -> None:
        by_pid = {process.pid: process for process in cluster.workers}
        pids = watcher.run(os.getpid)
        while not finished.is_set():
            busy = [address for address, keys in watcher.run(executing).items() if keys]
            if busy:
                victim = by_pid[pids[busy[0]]]
                victim.kill()
                killed.append(victim)
                return

    with Client(cluster.scheduler_address) as watcher:
        thread = threading.Thread(target=watch, args=(watcher,))
        thread.start()
        try:
            yield killed
        finally:
            finished.set()
            thread.join()
