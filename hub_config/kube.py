"""The spawner of the Kubernetes facility: KubeSpawner with a namespace per user, the facility's
profiles, the user's IAM token and Dask certificate.

Before a user's first server the hub makes the user's namespace and what it holds
(``hub_config.tenancy``), never taking over an object that was not made for that user. The
user's IAM token is a Secret in that namespace, mounted read-only as a file (the kubelet
updates mounted Secrets, so a refresh reaches the running pod); the pod spec and its
environment carry only the file's path. The Dask certificate (``analysis_kernels.dask_tls``) is
another Secret there. ``analysis_kernels.clusters`` mounts both into the user's Dask pods.

zero-to-jupyterhub configures ``c.KubeSpawner`` from its ``singleuser`` values, and
configuration beats a trait's default: the facility's labels, volumes, environment and account
are therefore merged into whatever configuration gave, when the pod is built.
"""

from __future__ import annotations

import os
from ipaddress import ip_address
from urllib.parse import urlsplit

from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from kubespawner.clients import shared_client
from tornado import web
from traitlets import Dict, Int, List, Unicode, default

from analysis_kernels.clusters import OWNER_LABEL
from analysis_kernels.dask_tls import TLS_MOUNT, tls_environment, user_certificate
from hub_config.facility_spawner import FacilitySpawnerMixin
from hub_config.profiles import kubespawner_profile
from hub_config.tenancy import (
    DASK_TLS_SECRET,
    USER_ACCOUNT,
    adoptable,
    tenant_namespace,
    tenant_objects,
    token_secret,
)

TOKEN_KEY = "bearer_token"
TOKEN_VOLUME = "facility-iam-token"
TLS_VOLUME = "facility-dask-tls"

# How the hub creates, reads and (for what a chart upgrade may change) replaces each kind.
_API = {
    "Namespace": ("CoreV1Api", "namespace", False),
    "ServiceAccount": ("CoreV1Api", "namespaced_service_account", True),
    "Secret": ("CoreV1Api", "namespaced_secret", True),
    "ResourceQuota": ("CoreV1Api", "namespaced_resource_quota", True),
    "LimitRange": ("CoreV1Api", "namespaced_limit_range", True),
    "RoleBinding": ("RbacAuthorizationV1Api", "namespaced_role_binding", True),
    "NetworkPolicy": ("NetworkingV1Api", "namespaced_network_policy", True),
}
_REPLACED = {"ResourceQuota", "LimitRange", "NetworkPolicy"}


async def ensure(manifest: dict, owner: str) -> None:
    """Create one of the user's objects. One that exists already is kept if the facility made
    it for this user (and brought up to date where a chart upgrade may have changed it), and
    refused otherwise: nothing of z2jh's, Kubernetes', a site's or another user's is adopted."""
    kind, meta = manifest["kind"], manifest["metadata"]
    api_name, suffix, namespaced = _API[kind]
    api = shared_client(api_name)
    where = (meta["namespace"],) if namespaced else ()
    try:
        await getattr(api, f"create_{suffix}")(*where, manifest)
        return
    except ApiException as err:
        if err.status != 409:
            raise
    existing = await getattr(api, f"read_{suffix}")(meta["name"], *where)
    labels = existing.metadata.labels or {}
    if not adoptable(labels, owner):
        place = f" in namespace {meta['namespace']}" if namespaced else ""
        raise web.HTTPError(
            409,
            f"{kind} {meta['name']}{place} exists and was not made by the facility for "
            f"{owner} (label {OWNER_LABEL}={labels.get(OWNER_LABEL, '<none>')}); "
            "refusing to use it. An admin must remove it before this user can start a server.",
        )
    if kind in _REPLACED:
        await getattr(api, f"replace_{suffix}")(meta["name"], *where, manifest)


class SecretTokenStore:
    """The token as a Secret, replaced in place, deleted when the server stops."""

    def __init__(self, api, namespace: str, name: str, labels: dict[str, str]):
        self.api, self.namespace, self.name, self.labels = api, namespace, name, labels

    def _manifest(self, token: str) -> dict:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": self.name, "labels": self.labels},
            "type": "Opaque",
            "stringData": {TOKEN_KEY: token},
        }

    async def publish(self, token: str) -> None:
        manifest = self._manifest(token)
        try:
            await self.api.replace_namespaced_secret(self.name, self.namespace, manifest)
        except ApiException as err:
            if err.status != 404:
                raise
            await self.api.create_namespaced_secret(self.namespace, manifest)

    async def withdraw(self) -> None:
        try:
            await self.api.delete_namespaced_secret(self.name, self.namespace)
        except ApiException as err:
            if err.status != 404:
                raise


def _merged(configured, ours: list[dict]) -> list[dict] | dict:
    """KubeSpawner's list-or-dict volumes (z2jh gives dicts) with the facility's by name."""
    names = {item["name"] for item in ours}
    if isinstance(configured, dict):
        return {k: v for k, v in configured.items() if v.get("name") not in names} | {
            item["name"]: item for item in ours
        }
    return [item for item in configured if item.get("name") not in names] + ours


class FacilityKubeSpawner(FacilitySpawnerMixin, KubeSpawner):
    default_image = Unicode(config=True, help="Image of profiles that name none.")
    token_mount = Unicode("/var/run/secrets/facility", config=True)
    hub_namespace = Unicode(
        config=True,
        help="The facility's namespace (the hub's); users' namespaces are <it>-u-<user>.",
    )
    hub_account = Unicode("hub", config=True, help="The hub's ServiceAccount (z2jh's: hub).")
    operator_account = Unicode(
        "dask-kubernetes-operator",
        config=True,
        help="The dask operator's ServiceAccount, in the facility's namespace.",
    )
    welcome = Unicode(config=True, help="README.md for each new home (hub_config.welcome).")
    user_quota = Dict(config=True, help="ResourceQuota of each user's namespace (spec.hard).")
    user_limits = Dict(config=True, help="LimitRange of each user's containers.")
    xcache_ports = List(
        Int(), config=True, help="Ports of the facility's XCache pods users' pods may reach."
    )

    @default("hub_namespace")
    def _hub_namespace_default(self):
        # The configured namespace (z2jh sets it from the hub pod's POD_NAMESPACE), read before
        # __init__ replaces it with the user's.
        return self.namespace

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The user's own namespace, whatever the configured (hub's) namespace is.
        self.namespace = tenant_namespace(self.hub_namespace, self.owner)
        self.dns_name = self.dns_name_template.format(namespace=self.namespace, name=self.pod_name)

    @property
    def token_secret_name(self) -> str:
        return token_secret(self.name)

    @property
    def token_path(self) -> str:
        return f"{self.token_mount}/{TOKEN_KEY}"

    def token_store(self) -> SecretTokenStore:
        labels = self._build_common_labels({"component": "iam-token", OWNER_LABEL: self.owner})
        return SecretTokenStore(self.api, self.namespace, self.token_secret_name, labels)

    @default("profile_list")
    def _profile_list_default(self):
        return facility_profile_list

    def _facility_volumes(self) -> list[dict]:
        token = {"secretName": self.token_secret_name, "defaultMode": 0o440}
        tls = {"secretName": DASK_TLS_SECRET, "defaultMode": 0o440}
        return [{"name": TOKEN_VOLUME, "secret": token}, {"name": TLS_VOLUME, "secret": tls}]

    def _facility_mounts(self) -> list[dict]:
        return [
            {"name": TOKEN_VOLUME, "mountPath": self.token_mount, "readOnly": True},
            {"name": TLS_VOLUME, "mountPath": TLS_MOUNT, "readOnly": True},
        ]

    async def get_pod_manifest(self):
        """The pod with the facility's own parts merged into what configuration gave."""
        self.extra_labels = {**self.extra_labels, OWNER_LABEL: self.owner}
        self.volumes = _merged(self.volumes, self._facility_volumes())
        self.volume_mounts = _merged(self.volume_mounts, self._facility_mounts())
        # The pod's own UID, for the owner reference that ties the user's Dask clusters to it.
        uid = {"valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}
        self.environment = {**self.environment, "FACILITY_POD_UID": uid}
        # The welcome README, written by the server itself into a new home; a site's own
        # postStart hook wins.
        welcome = {"exec": {"command": ["python3", "-m", "hub_config.welcome"]}}
        self.lifecycle_hooks = {"postStart": welcome} | dict(self.lifecycle_hooks or {})
        # Only this account exists in the user's namespace; KubeCluster needs its token.
        self.service_account = USER_ACCOUNT
        self.automount_service_account_token = True
        return await super().get_pod_manifest()

    def get_env(self):
        env = super().get_env()
        env.update(tls_environment())
        env.update(
            {
                "FACILITY_DASK_NAMESPACE": self.namespace,
                "FACILITY_DASK_IMAGE": self.image,
                "FACILITY_TOKEN_SECRET": self.token_secret_name,
                "FACILITY_TOKEN_MOUNT": self.token_mount,
                "FACILITY_DASK_TLS_SECRET": DASK_TLS_SECRET,
                "FACILITY_POD_NAME": self.pod_name,
                "FACILITY_OWNER": self.owner,
                "FACILITY_WELCOME": self.welcome,
            }
        )
        return env

    async def api_server_addresses(self) -> list[tuple[str, int]]:
        """Where pods reach the Kubernetes API: the ``kubernetes`` Service's cluster IP (as the
        hub's own pod sees it) and the API servers behind it, which network policies see after
        the Service's address is translated."""
        addresses = []
        host, port = (
            os.environ.get("KUBERNETES_SERVICE_HOST"),
            os.environ.get("KUBERNETES_SERVICE_PORT"),
        )
        if host and port:
            addresses.append((host, int(port)))
        try:
            endpoints = await shared_client("CoreV1Api").read_namespaced_endpoints(
                "kubernetes", "default"
            )
        except ApiException as err:
            self.log.warning("The API server's endpoints are unreadable (%s)", err.reason)
            endpoints = None
        for subset in (endpoints.subsets or []) if endpoints else []:
            for address in subset.addresses or []:
                addresses += [(address.ip, p.port) for p in subset.ports or []]
        if not addresses:
            self.log.warning("No API server address found: %s's pods cannot reach it", self.owner)
        return addresses

    def hub_addresses(self) -> list[tuple[str, int]]:
        """The hub API's address where pods reach it at an IP address (a hub outside the
        cluster, beside it); a hub in the cluster is reached by name and its pods' labels."""
        url = urlsplit(self.hub.api_url)
        try:
            address = ip_address(url.hostname or "")
        except ValueError:
            return []
        return [(str(address), url.port or (443 if url.scheme == "https" else 80))]

    async def ensure_tenant(self) -> None:
        """The user's namespace and everything in it, then the user's Dask certificate."""
        for manifest in tenant_objects(
            self.hub_namespace,
            self.owner,
            self.hub_account,
            self.operator_account,
            dict(self.user_quota),
            dict(self.user_limits),
            await self.api_server_addresses(),
            self.hub_addresses(),
            list(self.xcache_ports),
        ):
            await ensure(manifest, self.owner)
        certificate = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": DASK_TLS_SECRET,
                "namespace": self.namespace,
                "labels": {OWNER_LABEL: self.owner},
            },
            "type": "Opaque",
            "stringData": user_certificate(self.owner),
        }
        await ensure(certificate, self.owner)

    async def start(self):
        await self.ensure_tenant()
        return await super().start()


def facility_profile_list(spawner: FacilityKubeSpawner) -> list[dict]:
    """KubeSpawner's profiles: the facility's, as open to this user's groups."""
    return [kubespawner_profile(p, spawner.default_image) for p in spawner.user_profiles()]
