"""Shared fixtures: small generated datasets and real Dask scheduler/worker processes."""

from __future__ import annotations

import os
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
# tests/kind needs the facility installed on a kind cluster: make kind-smoke collects it.
collect_ignore = [] if os.environ.get("FACILITY_KIND_SMOKE") else ["kind"]

SIZES = {"ds": (2, 60_000), "stop": (2, 15_000), "dt": (2, 60_000)}
# make test runs the suite on two pytest-xdist workers. A module's tests run on one worker (its
# module fixtures start once), and so do the tests that share one costly or exclusive session
# fixture: the real node (one per machine: tests/e2e, tests/node, and tests/test_images.py,
# whose image archives tests/e2e imports), the control plane with the chart installed
# (tests/cluster) and the storage grid (tests/storage).
GROUPS = {"e2e": "node", "node": "node", "test_images.py": "node"}
GROUPS |= {"cluster": "cluster", "storage": "storage"}


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::")[0]  # tests/<directory or module>/...
            parts = path.split("/")
            return GROUPS.get(parts[1], path) if len(parts) > 1 else path

    return SharedFixtureScheduling(config, log)


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


@pytest.fixture(scope="session")
def facility(tmp_path_factory, datasets):
    """The local facility (development IAM, JupyterHub, proxy) with short-lived tokens.

    Access tokens live 30 s and the hub refreshes them 20 s before expiry, checking every 2 s,
    so a refresh happens about every 10 s while a server runs.
    """
    from hub_config.local.facility import LocalFacility

    state = tmp_path_factory.mktemp("facility")
    facility = LocalFacility(
        state_dir=state,
        log_dir=state / "logs",
        access_token_ttl=30,
        token_refresh_margin=20,
        token_check_interval=2,
        sample_data=str(datasets["ds"].parent),
    )
    facility.start()
    yield facility
    facility.stop()


@pytest.fixture(scope="session")
def facility_users(facility) -> dict[str, str]:
    """Username → password of the development IAM's test users."""
    return {u["username"]: u["password"] for u in facility.users()}


@pytest.fixture(scope="session")
def login(facility, facility_users):
    """``login(name)``: that test user, logged in through the IAM form, with an API token."""
    from hub_config.local.client import HubUser

    def log_in(name: str) -> HubUser:
        user = HubUser(facility.url, name, facility_users[name]).login()
        user.new_token()
        return user

    return log_in


@pytest.fixture(scope="session")
def hub_admin(login):
    """carol, in IAM group facility-admins, hence a hub admin (she may read auth state)."""
    return login("carol")
