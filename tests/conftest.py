"""Shared fixtures: small generated datasets and real Dask scheduler/worker processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis_kernels.executor.processes import DaskProcesses
from analysis_kernels.generate import DatasetSpec, generate_dataset

REAL_NANOAOD = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "nanoAOD_2015_CMS_Open_Data_ttbar.root"
)
SIZES = {"ds": (2, 60_000), "stop": (2, 15_000), "dt": (2, 60_000)}


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


@pytest.fixture(scope="session")
def dask_processes():
    cluster = DaskProcesses(n_workers=2)
    yield cluster
    cluster.stop()
