"""``make run``'s command: the facility comes up, prints how to use it, stops cleanly on Ctrl-C
(its servers first, no tracebacks, no server left in the hub's database), and a second run a
moment later comes back on the same ports with the state of the first."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys

import psutil
import pytest
import requests

from analysis_kernels.executor.processes import free_port
from hub_config.local.client import HubUser

pytestmark = pytest.mark.slow


def start(state, port: int, idp_port: int) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "hub_config.local", "--state", str(state)]
    command += ["--port", str(port), "--idp-port", str(idp_port)]
    # A session of its own, as a terminal gives its foreground job.
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "Test users" in line:
            break
    banner = "".join(lines)
    match = re.search(r"running at (http://127\.0\.0\.1:\d+)", banner)
    assert match, f"no URL in the output of python -m hub_config.local:\n{banner}"
    assert f"Development IAM (not for production): http://127.0.0.1:{idp_port}" in banner
    return process, match.group(1)


def ctrl_c(process: subprocess.Popen) -> str:
    """SIGINT to the whole foreground process group, as Ctrl-C in a terminal sends it."""
    os.killpg(process.pid, signal.SIGINT)
    rest, _ = process.communicate(timeout=90)
    assert process.returncode == 0, rest
    return rest


def test_make_run_serves_stops_cleanly_on_ctrl_c_and_restarts_on_its_ports(tmp_path):
    state = tmp_path / "state"
    hub_port, idp_port = free_port(), free_port()
    process, url = start(state, hub_port, idp_port)
    try:
        alice = HubUser(url, "alice", "alice-pw").login()
        alice.new_token()
        server = alice.start_server()
        assert requests.get(
            f"{server}api/status", headers={"Authorization": f"token {alice.token}"}
        ).ok
        assert (state / "users" / "alice" / "examples" / "ds_phipi.ipynb").exists()
        crypt_key = (state / "secrets" / "crypt-key").read_text()
        started = psutil.Process(process.pid).children(recursive=True)
    finally:
        output = ctrl_c(process)
    assert "Stopping the facility" in output
    assert output.rstrip().endswith("The facility has stopped.")
    assert not [p.cmdline() for p in started if p.is_running() and p.status() != "zombie"]
    assert not _listening(url)
    for log in (state / "logs").iterdir():
        for trouble in ("Traceback", "Failed to stop", "Task was destroyed"):
            assert trouble not in log.read_text(), f"{trouble!r} in {log.name}"
    with sqlite3.connect(state / "jupyterhub.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM servers").fetchone() == (0,)

    process, again = start(state, hub_port, idp_port)
    try:
        assert again == url  # open tabs reconnect
        assert (state / "secrets" / "crypt-key").read_text() == crypt_key
        alice = HubUser(url, "alice", "alice-pw").login()
        alice.new_token()
        model = alice.api("GET", "/users/alice").json()
        assert model["created"] < model["last_activity"]  # the same user row as before
        assert model["servers"] == {}  # servers stop with the facility
    finally:
        ctrl_c(process)


def test_a_hub_stuck_in_its_shutdown_leaves_nothing_running(tmp_path):
    """A hub that does not stop within the timeout is killed; the proxy, idle culler and
    user's server it started are stopped after it, not left running (the test facility's hub
    once hung in "Cleaning up 1 services..." and its children outlived every test run)."""
    from hub_config.local.facility import LocalFacility

    facility = LocalFacility(state_dir=tmp_path, stop_timeout=3).start()
    try:
        alice = HubUser(facility.url, "alice", "alice-pw").login()
        alice.new_token()
        alice.start_server()
        [hub] = [p for p in facility.processes if p.args[1:3] == ["-m", "jupyterhub"]]
        started = psutil.Process(hub.pid).children(recursive=True)
        commands = " ".join(" ".join(p.cmdline()) for p in started)
        for child in ("configurable-http-proxy", "jupyterhub_idle_culler", "singleuser"):
            assert child in commands
        os.kill(hub.pid, signal.SIGSTOP)  # its shutdown never begins
    finally:
        facility.stop()
    assert hub.returncode == -signal.SIGKILL
    assert not [p.cmdline() for p in started if p.is_running() and p.status() != "zombie"]


def _listening(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
    except requests.ConnectionError:
        return False
    return True


def test_the_iam_listens_on_the_address_it_is_given_and_not_on_loopback(tmp_path):
    """The e2e umbrella's IAM listens on the node's address, which the hub pod and the browser
    both reach: its issuer names that address, it answers there, and not on 127.0.0.1."""
    from hub_config.local.facility import LocalFacility

    iam = LocalFacility(state_dir=tmp_path, hub=False, idp_host="127.0.0.2").start()
    try:
        assert iam.issuer == f"http://127.0.0.2:{iam.idp_port}"
        discovery = "/.well-known/openid-configuration"
        assert requests.get(iam.issuer + discovery, timeout=10).json()["issuer"] == iam.issuer
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{iam.idp_port}{discovery}", timeout=10)
    finally:
        iam.stop()
