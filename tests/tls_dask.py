"""A real Dask scheduler and worker as a user's Dask pods run them: TLS only, with the user's
certificate (as the hub makes it) in the settings the pods get."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from analysis_kernels.dask_tls import tls_environment, user_certificate

DASK = Path(sys.executable).parent / "dask"


def certificate_dir(root: Path, owner: str, certificate: dict | None = None) -> Path:
    folder = root / owner
    folder.mkdir(exist_ok=True)
    for name, text in (certificate or user_certificate(owner)).items():
        (folder / name).write_text(text)
        (folder / name).chmod(0o600)
    return folder


class TLSDask:
    """``with TLSDask(folder, tmp) as address:`` a scheduler (tls://) and one worker."""

    def __init__(self, folder: Path, tmp: Path):
        self.env = os.environ | tls_environment(str(folder))
        self.scheduler_file = tmp / "scheduler.json"
        self.processes: list[subprocess.Popen] = []

    def _spawn(self, *args: str) -> None:
        self.processes.append(
            subprocess.Popen(
                [str(DASK), *args],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def __enter__(self) -> str:
        self._spawn("scheduler", "--protocol", "tls", "--host", "127.0.0.1", "--port", "0",
                    "--no-dashboard", "--scheduler-file", str(self.scheduler_file))  # fmt: skip
        deadline = time.monotonic() + 60
        while not self.scheduler_file.exists():
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError("the TLS scheduler did not start within 60 s")
            time.sleep(0.2)
        time.sleep(0.2)
        address = json.loads(self.scheduler_file.read_text())["address"]
        self._spawn("worker", address, "--nthreads", "1", "--no-dashboard")
        return address

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=30)
