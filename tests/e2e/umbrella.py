"""The e2e tests' hub as the whole umbrella deploys it, where z2jh's chart was brought in: z2jh's
hub and proxy pods of the images built here, z2jh's NetworkPolicies enforced by Cilium, and
the development IAM beside the node on its address, outside the cluster as a site's IAM is
(a hub pod's restart leaves its sessions and refresh tokens alone). Users reach the hub as
through a site's ingress, here a port-forward of z2jh's proxy-public Service."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from charts.node.node import ADDRESS, Node
from hub_config.local.facility import LocalFacility, wait_for
from tests.cluster.cluster_api import BIN, NAMESPACE

VALUES = Path(__file__).with_name("umbrella-values.yaml")


def umbrella_iam(state: Path) -> LocalFacility:
    """The development IAM alone on the node's address; its ``url`` (the client's callback) is
    where the port-forward of proxy-public will listen."""
    return LocalFacility(
        state_dir=state,
        log_dir=state / "logs",
        hub=False,
        idp_host=ADDRESS,
        access_token_ttl=240,
    ).start()


def umbrella_values(chart: Path, iam: LocalFacility) -> tuple[str, list[str]]:
    """The e2e values put in the chart's ``ci/`` (where the tests' releases take theirs) and
    the settings that name this IAM, for ``release``."""
    shutil.copy(VALUES, chart / "ci" / VALUES.name)
    hub = iam.url
    facility = "jupyterhub.custom.facility.iam"
    return VALUES.name, [
        "--set-string", f"iam.clientSecret={iam.client_secret_file.read_text().strip()}",
        "--set-string", f"{facility}.issuer={iam.issuer}",
        "--set-string", f"{facility}.callbackUrl={hub}/hub/oauth_callback",
        "--set-string", f"{facility}.postLogoutRedirectUrl={hub}/hub/login",
    ]  # fmt: skip


@dataclass
class UmbrellaHub:
    """What the tests use of a hub (``url``, ``issuer``, ``restart_hub``) for z2jh's pods."""

    node: Node
    iam: LocalFacility
    forward: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return self.iam.url

    @property
    def issuer(self) -> str:
        return self.iam.issuer

    def start(self) -> UmbrellaHub:
        port = self.url.rsplit(":", 1)[1]
        self.forward = subprocess.Popen(
            [
                str(BIN / "kubectl"), "--kubeconfig", str(self.node.plane.kubeconfig),
                "port-forward", "-n", NAMESPACE, "--address=127.0.0.1", "svc/proxy-public",
                f"{port}:http",
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._wait_for_hub()
        return self

    def _wait_for_hub(self) -> None:
        wait_for(f"{self.url}/hub/api", self.forward, "z2jh's hub through proxy-public", 300)

    def restart_hub(self) -> None:
        """A new hub pod (z2jh's Deployment restarted); the proxy and the IAM keep running."""
        for step in (
            ("rollout", "restart", "deployment/hub"),
            ("rollout", "status", "deployment/hub", "--timeout=300s"),
        ):
            done = self.node.kubectl(*step, "-n", NAMESPACE)
            assert done.returncode == 0, f"kubectl {' '.join(step)}: {done.stderr}"
        self._wait_for_hub()

    def stop(self) -> None:
        if self.forward:
            self.forward.terminate()
            self.forward.wait(timeout=30)
