"""A Dask scheduler and workers as separate local processes, as on a real cluster.

What ``dask scheduler`` and ``dask worker`` do by hand, on 127.0.0.1 and a free port: for
the distributed runs of the benchmarks and the tests (worker processes can be killed).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from distributed import Client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DaskProcesses:
    """``scheduler_address`` as on ``LocalCluster``, so either can stand where a cluster is expected."""

    def __init__(self, n_workers: int, timeout: float = 60):
        self.scheduler_address = f"tcp://127.0.0.1:{free_port()}"
        port = self.scheduler_address.rsplit(":", 1)[1]
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        self.scheduler = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                port,
                "--no-dashboard",
            ],
            **quiet,
        )
        self.workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_worker",
                    self.scheduler_address,
                    "--nthreads",
                    "1",
                    "--host",
                    "127.0.0.1",
                    "--no-dashboard",
                    "--no-nanny",  # a killed worker stays dead
                ],
                **quiet,
            )
            for _ in range(n_workers)
        ]
        deadline = time.monotonic() + timeout
        while True:
            try:
                with Client(self.scheduler_address, timeout="5s") as client:
                    client.wait_for_workers(n_workers, timeout=timeout)
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.5)

    def stop(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            proc.terminate()
        for proc in [*self.workers, self.scheduler]:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
