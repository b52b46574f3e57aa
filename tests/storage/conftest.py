"""A grid storage element and its token issuer, for real: the development IAM over TLS (a CA
made for the session) and XRootD with the scitokens plugin, on 127.0.0.1 and free ports.

Processes under test find the user's token as on the facility: ``BEARER_TOKEN_FILE`` (0600),
written by :func:`as_user`; workers started by a test inherit the environment.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub_config.local.facility import LocalFacility
from tests.storage.tokens import login

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}


@dataclass
class Grid:
    facility: LocalFacility
    directory: Path

    @property
    def storage(self):
        return self.facility.storage_server

    def token(self, user: str, resource: str = "") -> dict:
        return login(self.facility, user, PASSWORDS[user], resource)


@contextlib.contextmanager
def start_grid(datasets: dict[str, Path], access_token_ttl: int = 3600, ca=None):
    """IAM and storage with the ds dataset under /store/cms/ds and /store/atlas/ds.

    xrootd runs as its own user, which must reach its directory: not under pytest's 0700
    temporary root, so in a directory of /tmp made here and removed afterwards. A second grid
    in one test session takes the first one's ``ca``: the XRootD client reads its trusted CAs
    (``X509_CERT_DIR``) once per process.
    """
    directory = Path(tempfile.mkdtemp(prefix="facility-grid-"))
    directory.chmod(0o755)
    facility = LocalFacility(
        directory / "state",
        storage=True,
        hub=False,
        access_token_ttl=access_token_ttl,
        log_dir=directory / "logs",
        ca=ca,
    )
    try:
        facility.start()
        for area in ("cms", "atlas"):
            facility.storage_server.publish(datasets["ds"], f"/store/{area}/ds")
        yield Grid(facility, directory)
    finally:
        facility.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def grid(datasets):
    with start_grid(datasets) as started:
        yield started


@contextlib.contextmanager
def environment(**values: str | None):
    """Set (or, with None, remove) environment variables for the block."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def write_token(path: Path, token: str) -> Path:
    """A token file as the hub writes it: replaced atomically, mode 0600."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.replace(tmp, path)
    return path


@contextlib.contextmanager
def as_user(grid: Grid, token_file: Path, token: str):
    """This process (and workers it starts) as a user of the facility: the CA trusted, the
    token in BEARER_TOKEN_FILE, no other token in reach."""
    write_token(token_file, token)
    env = grid.facility.client_environment() | {"BEARER_TOKEN_FILE": str(token_file)}
    with environment(**env, BEARER_TOKEN=None, XDG_RUNTIME_DIR=None):
        yield
