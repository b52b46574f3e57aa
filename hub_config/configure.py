"""Turn the facility's settings into JupyterHub configuration.

``configure(c, settings)`` is the one entry point: the local facility's
``jupyterhub_config.py`` and the Helm chart's ``jupyterhub_config.d`` file both call it. The
backend setting picks the spawner (a local process, or KubeSpawner) and the Dask cluster the
user's server makes (``analysis_kernels.clusters``); everything else (login, groups, tokens,
profiles, culling) is shared.
"""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from hub_config.branding import configure_branding
from hub_config.settings import FacilityConfigError, FacilitySettings
from hub_config.welcome import seed_welcome_hook, welcome_text

# Jupyter settings of the users' servers: no news prompt, the Dask cluster cards in view.
USER_JUPYTER_CONFIG = Path(__file__).resolve().parent / "jupyter"


def _require_crypt_key(c) -> None:
    keys = os.environ.get("JUPYTERHUB_CRYPT_KEY") or c.CryptKeeper.get("keys")
    if not keys:
        raise FacilityConfigError(
            "JUPYTERHUB_CRYPT_KEY is not set: the hub keeps users' IAM tokens in an encrypted "
            "auth state and needs a key for it. Set JUPYTERHUB_CRYPT_KEY to the output of "
            "'openssl rand -hex 32' (on Kubernetes the chart sets it from the hub Secret)."
        )


def _authenticator(c, settings: FacilitySettings) -> None:
    iam = settings.iam
    c.JupyterHub.authenticator_class = "hub_config.iam.IAMAuthenticator"
    c.IAMAuthenticator.issuer = iam.issuer
    c.IAMAuthenticator.client_id = iam.client_id
    c.IAMAuthenticator.client_secret = iam.client_secret()
    c.IAMAuthenticator.groups_claim = iam.groups_claim
    c.IAMAuthenticator.allowed_groups = set(iam.allowed_groups)
    c.IAMAuthenticator.admin_groups = set(iam.admin_groups)
    c.IAMAuthenticator.refresh_margin = settings.tokens.refresh_margin
    c.IAMAuthenticator.auth_refresh_age = int(settings.tokens.auth_refresh_age)
    c.IAMAuthenticator.auth_refresh_strict = True
    if iam.scopes:
        c.IAMAuthenticator.scope = list(iam.scopes)
    if iam.callback_url:
        c.IAMAuthenticator.oauth_callback_url = iam.callback_url
    if iam.end_session_url:
        c.IAMAuthenticator.end_session_url = iam.end_session_url
    if iam.post_logout_redirect_url:
        c.IAMAuthenticator.post_logout_redirect_url = iam.post_logout_redirect_url


def _dask_environment(settings: FacilitySettings) -> dict[str, str]:
    """What the user's server needs to make clusters with the facility's factory."""
    return {
        "FACILITY_CLUSTER_BACKEND": settings.backend,
        "FACILITY_DASK_IDLE_TIMEOUT": str(settings.dask.idle_timeout),
        "DASK_LABEXTENSION__FACTORY__MODULE": "analysis_kernels.clusters",
        "DASK_LABEXTENSION__FACTORY__CLASS": "facility_cluster",
        # Through the server's jupyter-server-proxy: a local port, or the scheduler's Service.
        "DASK_DISTRIBUTED__DASHBOARD__LINK": (
            "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status"
            if settings.backend == "local"
            else "{JUPYTERHUB_SERVICE_PREFIX}proxy/{host}:{port}/status"
        ),
    }


def _local_spawner(c, settings: FacilitySettings) -> None:
    state = Path(settings.local.state_dir).resolve()
    c.JupyterHub.spawner_class = "hub_config.spawners.LocalFacilitySpawner"
    c.LocalFacilitySpawner.users_dir = str(state / "users")
    c.LocalFacilitySpawner.notebooks_dir = str(resources.files("analysis_kernels") / "notebooks")
    c.LocalFacilitySpawner.profiles = settings.profiles
    c.LocalFacilitySpawner.token_check_interval = settings.tokens.check_interval
    c.LocalFacilitySpawner.facility_environment = _dask_environment(settings) | {
        "FACILITY_SAMPLE_DATA": settings.local.sample_data,
        "JUPYTER_CONFIG_PATH": str(USER_JUPYTER_CONFIG),
    }
    c.LocalFacilitySpawner.pre_spawn_hook = seed_welcome_hook(
        settings.branding, settings.local.sample_data
    )
    c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    c.JupyterHub.cleanup_servers = True
    # Many servers starting at once on a few cores take longer than JupyterHub's defaults.
    c.LocalFacilitySpawner.start_timeout = 300
    c.LocalFacilitySpawner.http_timeout = 180


def _kube_spawner(c, settings: FacilitySettings) -> None:
    from hub_config.kube import facility_profile_list

    kube = settings.kubernetes
    c.JupyterHub.spawner_class = "hub_config.kube.FacilityKubeSpawner"
    c.FacilityKubeSpawner.profiles = settings.profiles
    c.FacilityKubeSpawner.default_image = kube.default_image
    c.FacilityKubeSpawner.token_mount = kube.token_mount
    c.FacilityKubeSpawner.token_check_interval = settings.tokens.check_interval
    c.FacilityKubeSpawner.facility_environment = _dask_environment(settings)
    c.FacilityKubeSpawner.uid = 1000
    c.FacilityKubeSpawner.fs_gid = 100
    c.FacilityKubeSpawner.container_security_context = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if kube.namespace:
        c.FacilityKubeSpawner.hub_namespace = kube.namespace
    c.FacilityKubeSpawner.hub_account = kube.hub_account
    c.FacilityKubeSpawner.operator_account = kube.operator_account
    c.FacilityKubeSpawner.user_quota = kube.user_quota
    c.FacilityKubeSpawner.user_limits = kube.user_limits
    c.FacilityKubeSpawner.xcache_ports = list(kube.xcache_ports)
    c.FacilityKubeSpawner.welcome = welcome_text(settings.branding, "/opt/facility/sample")
    # z2jh sets c.KubeSpawner.profile_list from its values ([] by default); the subclass's
    # section of the config wins over it.
    c.FacilityKubeSpawner.profile_list = facility_profile_list
    hub_namespace = kube.namespace or c.KubeSpawner.get("namespace")
    _hub_reachable_from_users_namespaces(c, hub_namespace or os.environ.get("POD_NAMESPACE", ""))


def _hub_reachable_from_users_namespaces(c, namespace: str) -> None:
    """z2jh gives servers the hub at ``http://hub:8081``, a Service name that resolves in the
    hub's own namespace only; users' servers run in namespaces of their own, so the name gets
    the hub's namespace (``hub.<namespace>.svc``). A qualified name or an address stays."""
    url = c.JupyterHub.get("hub_connect_url")
    if not url or not namespace:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host or host == "localhost" or "." in host or ":" in host:
        return
    netloc = f"{host}.{namespace}.svc" + (f":{parts.port}" if parts.port else "")
    c.JupyterHub.hub_connect_url = urlunsplit(parts._replace(netloc=netloc))


def _idle_culler(c, settings: FacilitySettings) -> None:
    servers = settings.servers
    if not servers.cull_idle_after:
        return
    c.JupyterHub.services.append(
        {
            "name": "idle-culler",
            "command": [
                sys.executable,
                "-m",
                "jupyterhub_idle_culler",
                f"--timeout={int(servers.cull_idle_after)}",
                f"--cull-every={int(servers.cull_every)}",
            ],
        }
    )
    c.JupyterHub.load_roles.append(
        {
            "name": "idle-culler",
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": ["idle-culler"],
        }
    )


def configure(c, settings: FacilitySettings) -> None:
    """Apply the facility's settings to JupyterHub's config object ``c``."""
    _require_crypt_key(c)
    _authenticator(c, settings)
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.named_server_limit_per_user = settings.servers.named_server_limit
    c.Authenticator.enable_auth_state = True
    if settings.backend == "local":
        _local_spawner(c, settings)
    else:
        _kube_spawner(c, settings)
    _idle_culler(c, settings)
    configure_branding(c, settings.branding)
