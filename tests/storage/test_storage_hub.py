"""make run's facility with its storage: alice logs in through the IAM over TLS, and the example
notebook in her server reads the sample data over root:// with the token the hub gave her."""

from __future__ import annotations

import ast
import shutil
import tempfile
from pathlib import Path

import pytest

from analysis_kernels import run
from hub_config.local.client import HubUser
from hub_config.local.facility import LocalFacility
from tests.storage.conftest import environment
from tests.test_hub_servers import RUN_EXAMPLE

pytestmark = pytest.mark.slow

SEES = """
import os
print(repr((os.environ["FACILITY_STORAGE_ROOT"], os.environ["FACILITY_STORAGE_HTTPS"])))
"""


def test_the_example_notebook_reads_the_sample_over_root_with_alices_token(datasets):
    directory = Path(tempfile.mkdtemp(prefix="facility-run-"))
    directory.chmod(0o755)  # xrootd, running as its own user, reaches its folder
    facility = LocalFacility(
        directory / "state",
        storage=True,
        sample_data=str(datasets["ds"].parent),
        log_dir=directory / "logs",
    )
    try:
        facility.start()
        assert facility.issuer.startswith("https://")
        with environment(REQUESTS_CA_BUNDLE=str(facility.ca.bundle)):
            alice = HubUser(facility.url, "alice", "alice-pw").login()
            alice.new_token()
            server = alice.start_server(profile="medium")
            root, https = ast.literal_eval(alice.run_code(server, SEES).strip())
            result = ast.literal_eval(alice.run_code(server, RUN_EXAMPLE).strip())
        assert root == facility.storage_server.root_url
        assert https == facility.storage_server.https_url
        expected = run("ds", datasets["ds"]).output["mass"]
        assert result["counts"] == expected.values().astype(int).tolist()
        # Workers logged in over root:// (ztn, TLS) as alice's token's subject.
        log = (facility.storage_server.directory / "xrootd.log").read_text()
        assert "TLSv1.3 login as" in log
    finally:
        facility.stop()
        shutil.rmtree(directory, ignore_errors=True)
