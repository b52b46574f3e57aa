"""Killing a Dask worker process while it executes a given kind of task, for the fault tests.

The victim is the first worker that says it is executing such a task: asked of the workers
themselves, not guessed from the scheduler's view and a delay, which a task faster than the
delay (a batch of cached chunks takes 0.2 s) never gives.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client

from analysis_kernels.executor.processes import DaskProcesses


@contextmanager
def first_worker_killed_executing(cluster: DaskProcesses, marker: str) -> Iterator[None]:
    """SIGKILL the first of ``cluster``'s workers seen executing a task whose key holds
    ``marker``, while the block runs; after it, asserts that one was, and died of it.

    A worker's pid is its process's: ``DaskProcesses`` starts workers without a nanny.
    """
    killed: list[subprocess.Popen] = []
    failed: list[BaseException] = []
    finished = threading.Event()

    def executing(dask_worker) -> list[str]:
        return [str(t.key) for t in dask_worker.state.executing if marker in str(t.key)]

    def watch(watcher: Client) -> None:
        try:
            by_pid = {process.pid: process for process in cluster.workers}
            pids = watcher.run(os.getpid)
            while not finished.is_set():
                busy = [address for address, keys in watcher.run(executing).items() if keys]
                if busy:
                    victim = by_pid[pids[busy[0]]]
                    victim.kill()
                    killed.append(victim)
                    return
                time.sleep(0.01)  # leaves the workers' event loops their core
        except BaseException as error:  # raised in the test, not lost with the thread
            failed.append(error)

    with Client(cluster.scheduler_address) as watcher:
        thread = threading.Thread(target=watch, args=(watcher,), daemon=True)
        thread.start()
        try:
            yield
        finally:
            finished.set()
            thread.join(timeout=60)
        assert not thread.is_alive(), "the watcher did not stop within 60 s"
        if failed:
            raise failed[0]
    assert killed, f"no worker was seen executing a task whose key holds {marker!r}"
    assert killed[0].wait(timeout=10) == -signal.SIGKILL
