"""Local server processes: free ports, orderly shutdown, and a Dask scheduler and workers as
separate processes, as on a real cluster.

``DaskProcesses`` does what ``dask scheduler`` and ``dask worker`` do by hand, on 127.0.0.1
and a free port: for the distributed runs of the benchmarks and the tests (worker processes
can be killed). The local facility and the test control plane start their servers with the
same helpers.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from distributed import Client


def free_port(preferred: int = 0) -> int:
    """``preferred`` when it is free on 127.0.0.1, else any free port.

    The probe binds with ``SO_REUSEADDR``, as the servers themselves (tornado, node) do, so a
    port whose only sockets are closed connections in TIME-WAIT, as after a quick restart,
    counts as free: a server can listen there.
    """
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port on 127.0.0.1")


def stop_in_reverse(processes: list[subprocess.Popen], timeout: float) -> None:
    """SIGTERM each process, last started first, killing any that outlive ``timeout``."""
    for process in reversed(processes):
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    processes.clear()


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
