"""Shared fixtures: small generated datasets and real Dask scheduler/worker processes."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from distributed import Client

from analysis_kernels.generate import DatasetSpec, generate_dataset

REAL_NANOAOD = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "nanoAOD_2015_CMS_Open_Data_ttbar.root"
)
SIZES = {"ds": (2, 60_000), "stop": (2, 15_000), "dt": (2, 60_000)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def real_nanoaod() -> Path:
    assert REAL_NANOAOD.exists(), f"the real CMS NanoAOD file is missing: {REAL_NANOAOD}"
    return REAL_NANOAOD


@pytest.fixture(scope="session")
def datasets(tmp_path_factory) -> dict[str, Path]:
    """One small dataset per analysis, generated once per test session."""
    root = tmp_path_factory.mktemp("datasets")
    out = {}
    for name, (files, events) in SIZES.items():
        generate_dataset(
            DatasetSpec(name, files=files, events_per_file=events, seed=7),
            root / name,
            progress=False,
        )
        out[name] = root / name
    return out


class DaskProcesses:
    """A ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1, as on a real cluster."""

    def __init__(self, n_workers: int, nanny: bool = False):
        self.address = f"tcp://127.0.0.1:{free_port()}"
        port = self.address.rsplit(":", 1)[1]
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
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_worker",
                    self.address,
                    "--nthreads",
                    "1",
                    "--host",
                    "127.0.0.1",
                    "--no-dashboard",
                    "--nanny" if nanny else "--no-nanny",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(n_workers)
        ]
        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(self.address, timeout="5s") as client:
                    client.wait_for_workers(n_workers, timeout=60)
                break
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


@pytest.fixture(scope="session")
def dask_processes():
    cluster = DaskProcesses(n_workers=2)
    yield cluster
    cluster.stop()
