"""The whole facility on one machine: the development IAM, JupyterHub and its proxy, and with
``storage`` a token-protected XRootD storage element serving the sample data.

State lives in one directory and survives restarts: the hub database, the users' homes, the
crypt key, the IAM client secret and the provider's signing keys. Servers listen on 127.0.0.1
only, on the requested ports or free ones. With ``tls`` (implied by ``storage``) the IAM
speaks HTTPS with a certificate from a CA made at each start (``<state>/tls``), which the hub,
the users' servers and their Dask workers trust.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import yaml

from analysis_kernels.executor.processes import free_port, stop_in_reverse
from hub_config.local.ca import LocalCA
from hub_config.local.storage import StorageServer

HERE = Path(__file__).resolve().parent
NODE_BIN = HERE / "node_modules" / ".bin"
DEFAULT_USERS = HERE / "users.yaml"
CLIENT_ID = "facility-hub"


def _secret_file(path: Path, make) -> str:
    """A secret made once and kept (0600), so a restart keeps sessions and encrypted state."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(make())
    return path.read_text().strip()


def wait_for(
    url: str,
    process: subprocess.Popen,
    what: str,
    timeout: float = 60,
    context: ssl.SSLContext | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=2, context=context):
                return
        except OSError:  # not listening yet, or the proxy has no route to it yet
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer at {url} within {timeout:.0f} s")


@dataclass
class LocalFacility:
    """Starts and stops the local facility; the options exist for tests and benchmarks (the
    hub's environment and arguments let a test point its KubeSpawner at a test API server)."""

    state_dir: Path
    users_file: Path = DEFAULT_USERS
    hub_port: int = 0
    idp_port: int = 0
    # Where the IAM listens: an address pods reach for a hub that runs in a pod beside a node.
    idp_host: str = "127.0.0.1"
    access_token_ttl: int = 3600
    token_check_interval: float = 60
    token_refresh_margin: float = 300
    sample_data: str = ""
    cull_idle_after: float = 3600
    extra_settings: dict = field(default_factory=dict)
    hub_environment: dict = field(default_factory=dict)
    hub_args: list[str] = field(default_factory=list)
    # Where the hub's API listens for servers: an address pods reach for a hub beside a node.
    hub_api_host: str = "127.0.0.1"
    hub_api_port: int = field(default=0, init=False)
    log_dir: Path | None = None
    tls: bool = False
    storage: bool = False
    hub: bool = True
    stop_timeout: float = 30  # seconds each process has to stop before it is killed
    processes: list[subprocess.Popen] = field(default_factory=list, init=False)
    ca: LocalCA | None = None  # made at start when TLS is on and none is given
    storage_server: StorageServer | None = field(default=None, init=False)

    def __post_init__(self):
        self.state_dir = Path(self.state_dir).resolve()
        self.hub_port = free_port(self.hub_port)
        self.idp_port = free_port(self.idp_port)
        # Fixed for this facility's life, so that servers still reach a restarted hub.
        self.hub_api_port = free_port()
        self.tls = self.tls or self.storage

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}"

    @property
    def issuer(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.idp_host}:{self.idp_port}"

    @property
    def client_secret_file(self) -> Path:
        return self.state_dir / "secrets" / "iam-client-secret"

    def users(self) -> list[dict]:
        return yaml.safe_load(Path(self.users_file).read_text())["users"]

    def _settings(self) -> dict:
        settings = {
            "backend": "local",
            "iam": {
                "issuer": self.issuer,
                "clientId": CLIENT_ID,
                "clientSecretFile": str(self.client_secret_file),
                "groupsClaim": "groups",
                "allowedGroups": ["cms", "atlas", "facility-admins"],
                "adminGroups": ["facility-admins"],
                "callbackUrl": f"{self.url}/hub/oauth_callback",
                "postLogoutRedirectUrl": f"{self.url}/hub/login",
            },
            "tokens": {
                "refreshMargin": self.token_refresh_margin,
                "checkInterval": self.token_check_interval,
            },
            "servers": {"cullIdleAfter": self.cull_idle_after},
            "local": {"stateDir": str(self.state_dir), "sampleData": self.sample_data},
        }
        for section, values in self.extra_settings.items():
            if isinstance(values, dict):
                values = settings.get(section, {}) | values
            settings[section] = values
        return settings

    def _log(self, name: str):
        if self.log_dir is None:
            return None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return open(self.log_dir / f"{name}.log", "ab")

    def _start_idp(self) -> None:
        secret = _secret_file(self.client_secret_file, lambda: secrets.token_urlsafe(32))
        config = {
            "issuer": self.issuer,
            "host": self.idp_host,
            "port": self.idp_port,
            "users": str(Path(self.users_file).resolve()),
            "keys": str(self.state_dir / "secrets" / "idp-keys.json"),
            "accessTokenTTL": self.access_token_ttl,
            **(
                {"tls": dict(zip(("cert", "key"), map(str, self.ca.issue("devidp")), strict=True))}
                if self.ca
                else {}
            ),
            "clients": [
                {
                    "client_id": CLIENT_ID,
                    "client_secret": secret,
                    "redirect_uris": [f"{self.url}/hub/oauth_callback"],
                    "post_logout_redirect_uris": [f"{self.url}/hub/login"],
                }
            ],
        }
        path = self.state_dir / "devidp.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(config, handle)
        log = self._log("devidp")
        process = subprocess.Popen(
            ["node", str(HERE / "devidp.mjs"), "--config", str(path)],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        self.processes.append(process)
        context = ssl.create_default_context(cafile=self.ca.ca_file) if self.ca else None
        wait_for(
            f"{self.issuer}/.well-known/openid-configuration",
            process,
            "the development IAM",
            context=context,
        )

    def _start_storage(self) -> None:
        """The storage element, serving the sample data under ``/store/cms/sample``."""
        self.storage_server = StorageServer(
            self.state_dir / "storage",
            issuer=self.issuer,
            ca=self.ca,
            users=[u["username"] for u in self.users()],
        )
        if self.sample_data:
            self.storage_server.publish(self.sample_data, "/store/cms/sample")
        self.storage_server.start()

    def client_environment(self) -> dict[str, str]:
        """What the hub, users' servers and their Dask workers need for the IAM and storage."""
        env = self.ca.client_environment() if self.ca else {}
        if self.storage_server:
            env["FACILITY_STORAGE_ROOT"] = self.storage_server.root_url
            env["FACILITY_STORAGE_HTTPS"] = self.storage_server.https_url
        return env

    def _start_hub(self) -> None:
        settings = self.state_dir / "facility.yaml"
        settings.write_text(yaml.safe_dump(self._settings(), sort_keys=False))
        crypt_key = _secret_file(self.state_dir / "secrets" / "crypt-key", secrets.token_hex)
        env = os.environ | self.client_environment() | self.hub_environment
        env |= {"FACILITY_SETTINGS": str(settings), "JUPYTERHUB_CRYPT_KEY": crypt_key}
        servers = [
            f"--LocalFacilitySpawner.environment={k}={v}"
            for k, v in self.client_environment().items()
        ]
        command = [
            sys.executable,
            "-m",
            "jupyterhub",
            "-f",
            str(HERE.parent / "jupyterhub_config.py"),
            f"--JupyterHub.bind_url={self.url}",
            f"--JupyterHub.hub_bind_url=http://{self.hub_api_host}:{self.hub_api_port}",
            f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{free_port()}",
            f"--ConfigurableHTTPProxy.command={NODE_BIN / 'configurable-http-proxy'}",
            *servers,
            *self.hub_args,
        ]
        log = self._log("jupyterhub")
        process = subprocess.Popen(
            command, cwd=self.state_dir, env=env, stdout=log, stderr=log, start_new_session=True
        )
        self.processes.append(process)
        wait_for(f"{self.url}/hub/api", process, "JupyterHub", timeout=120)

    def start(self) -> LocalFacility:
        if not (NODE_BIN / "configurable-http-proxy").exists():
            raise RuntimeError(f"npm packages missing: run 'npm ci' in {HERE}")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            if self.tls and self.ca is None:
                self.ca = LocalCA(self.state_dir / "tls")
            self._start_idp()
            if self.storage:
                self._start_storage()
            if self.hub:
                self._start_hub()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the hub first (it stops the users' servers and the proxy), then the IAM.

        The servers run in sessions of their own, so a Ctrl-C in the terminal reaches only the
        runner, which stops them in this order with one SIGTERM each.
        """
        self._stop(self.processes)
        if self.storage_server:
            self.storage_server.stop()

    def restart_hub(self) -> None:
        """Stop JupyterHub and start it again, the IAM and storage left running: what a
        hub pod's restart is on Kubernetes (the IAM keeps its sessions and refresh tokens)."""
        [hub] = [p for p in self.processes if p.args[1:3] == ["-m", "jupyterhub"]]
        self.processes.remove(hub)
        self._stop([hub])
        self._start_hub()

    def _stop(self, processes: list[subprocess.Popen]) -> None:
        """Stop ``processes``, then whatever they had started and left running: a hub whose
        own shutdown outlives the timeout is killed, and its proxy, managed services and
        users' servers would otherwise be left behind."""
        started = [c for p in processes if p.poll() is None for c in _descendants(p.pid)]
        stop_in_reverse(processes, timeout=self.stop_timeout)
        _, alive = psutil.wait_procs(_terminate(started), timeout=self.stop_timeout)
        for leftover in alive:
            leftover.kill()
        psutil.wait_procs(alive, timeout=10)

    def __enter__(self) -> LocalFacility:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _terminate(processes: list[psutil.Process]) -> list[psutil.Process]:
    """SIGTERM to those still running (not a process that took a finished one's pid)."""
    running = []
    for process in processes:
        try:
            if process.is_running():
                process.terminate()
                running.append(process)
        except psutil.NoSuchProcess:
            pass
    return running
