"""``make run``'s command: the facility comes up, prints how to use it, stops cleanly on Ctrl-C,
and a second run keeps the state of the first."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest
import requests

from analysis_kernels.executor.processes import free_port
from hub_config.local.client import HubUser

pytestmark = pytest.mark.slow


def start(state, port: int) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "hub_config.local", "--state", str(state)]
    command += ["--port", str(port), "--idp-port", str(free_port())]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "Test users" in line:
            break
    banner = "".join(lines)
    match = re.search(r"running at (http://127\.0\.0\.1:\d+)", banner)
    assert match, f"no URL in the output of python -m hub_config.local:\n{banner}"
    return process, match.group(1)


def interrupt(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, rest
    return rest


def test_make_run_serves_stops_on_ctrl_c_and_keeps_state(tmp_path):
    state = tmp_path / "state"
    process, url = start(state, free_port())
    try:
        alice = HubUser(url, "alice", "alice-pw").login()
        alice.new_token()
        server = alice.start_server()
        assert requests.get(
            f"{server}api/status", headers={"Authorization": f"token {alice.token}"}
        ).ok
        assert (state / "users" / "alice" / "examples" / "ds_phipi.ipynb").exists()
        crypt_key = (state / "secrets" / "crypt-key").read_text()
    finally:
        output = interrupt(process)
    assert "Stopping the facility" in output
    assert not _listening(url)

    process, url = start(state, free_port())
    try:
        assert (state / "secrets" / "crypt-key").read_text() == crypt_key
        alice = HubUser(url, "alice", "alice-pw").login()
        alice.new_token()
        model = alice.api("GET", "/users/alice").json()
        assert model["created"] < model["last_activity"]  # the same user row as before
        assert model["servers"] == {}  # servers stop with the facility
    finally:
        interrupt(process)


def _listening(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
    except requests.ConnectionError:
        return False
    return True
