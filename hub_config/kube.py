"""The spawner of the Kubernetes facility: KubeSpawner with the facility's profiles and token.

The user's IAM token is a Secret next to the user's pod, mounted read-only as a file (the
kubelet updates mounted Secrets, so a refresh reaches the running pod); the pod spec and its
environment carry only the file's path. The same Secret is mounted into the user's Dask
scheduler and workers by ``analysis_kernels.clusters``.
"""

from __future__ import annotations

from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from kubespawner.clients import shared_client
from traitlets import Dict, Unicode, default

from analysis_kernels.clusters import OWNER_LABEL, cluster_name
from hub_config.facility_spawner import FacilitySpawnerMixin
from hub_config.profiles import kubespawner_profile

TOKEN_KEY = "bearer_token"
TOKEN_VOLUME = "iam-token"


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


DASK_GROUP = "kubernetes.dask.org"
OWN_VERBS = ["get", "list", "watch", "update", "patch", "delete"]


def account_name(owner: str) -> str:
    """The user's ServiceAccount; the admission policy reads the owner back from this name."""
    return f"user-{owner}"


def own_dask_rules(owner: str) -> list[dict]:
    """The user's own Role: everything on their one Dask cluster, its default worker group and
    its autoscaler, by name, and nothing on anyone else's (reads included: RBAC names what a
    ``get``, or a ``list``/``watch`` selecting one name, may see)."""
    cluster = cluster_name(owner)
    return [
        {
            "apiGroups": [DASK_GROUP],
            "resources": ["daskclusters", "daskclusters/status", "daskautoscalers"],
            "resourceNames": [cluster],
            "verbs": OWN_VERBS,
        },
        {
            "apiGroups": [DASK_GROUP],
            "resources": ["daskworkergroups", "daskworkergroups/scale"],
            "resourceNames": [f"{cluster}-default"],
            "verbs": OWN_VERBS,
        },
    ]


def user_objects(namespace: str, owner: str, role: str, operator: dict[str, str]) -> list[dict]:
    """What each user gets beside the server: a ServiceAccount (its name tells the admission
    policy whose Dask objects it may create) bound to the users' shared Role and to a Role of
    its own for its own Dask cluster, and a NetworkPolicy letting only that user's pods reach
    that user's Dask pods."""
    labels = {"app.kubernetes.io/name": "analysis-facility", OWNER_LABEL: owner}
    account = account_name(owner)
    meta = {"namespace": namespace, "labels": labels}
    subjects = [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
    dask_pods = {"key": "dask.org/component", "operator": "In", "values": ["scheduler", "worker"]}
    own_pods = {"matchLabels": {OWNER_LABEL: owner}}

    def binding(name: str, role_name: str) -> dict:
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name, **meta},
            "subjects": subjects,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name},
        }

    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, **meta}},
        binding(account, role),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": f"{account}-dask", **meta},
            "rules": own_dask_rules(owner),
        },
        binding(f"{account}-dask", f"{account}-dask"),
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": cluster_name(owner), **meta},
            "spec": {
                "podSelector": own_pods | {"matchExpressions": [dask_pods]},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {"from": [{"podSelector": own_pods}]},
                    {"from": [{"podSelector": {"matchLabels": operator}}]},
                ],
            },
        },
    ]


async def _create(manifest: dict) -> None:
    """Create one object; one that exists already is left as it is."""
    namespace = manifest["metadata"]["namespace"]
    create = {
        "ServiceAccount": ("CoreV1Api", "create_namespaced_service_account"),
        "Role": ("RbacAuthorizationV1Api", "create_namespaced_role"),
        "RoleBinding": ("RbacAuthorizationV1Api", "create_namespaced_role_binding"),
        "NetworkPolicy": ("NetworkingV1Api", "create_namespaced_network_policy"),
    }
    api, method = create[manifest["kind"]]
    try:
        await getattr(shared_client(api), method)(namespace, manifest)
    except ApiException as err:
        if err.status != 409:
            raise


class FacilityKubeSpawner(FacilitySpawnerMixin, KubeSpawner):
    default_image = Unicode(config=True, help="Image of profiles that name none.")
    token_mount = Unicode("/var/run/secrets/facility", config=True)
    user_role = Unicode("analysis-facility-user", config=True, help="Role of users' accounts.")
    operator_labels = Dict(
        {"app.kubernetes.io/name": "dask-kubernetes-operator"},
        config=True,
        help="Labels of the dask operator's pods, which must reach every Dask scheduler.",
    )

    @default("service_account")
    def _service_account_default(self):
        return account_name(self.owner)

    @default("extra_labels")
    def _extra_labels_default(self):
        # The user's NetworkPolicy admits pods with this label to the user's Dask pods.
        return {OWNER_LABEL: self.owner}

    @property
    def token_secret_name(self) -> str:
        return f"{self.pod_name}-iam-token"

    @property
    def token_path(self) -> str:
        return f"{self.token_mount}/{TOKEN_KEY}"

    def token_store(self) -> SecretTokenStore:
        labels = self._build_common_labels({"component": "iam-token"})
        return SecretTokenStore(self.api, self.namespace, self.token_secret_name, labels)

    @default("profile_list")
    def _profile_list_default(self):
        return lambda spawner: [
            kubespawner_profile(p, spawner.default_image) for p in spawner.user_profiles()
        ]

    @default("volumes")
    def _volumes_default(self):
        secret = {"secretName": self.token_secret_name, "defaultMode": 0o440}
        return [{"name": TOKEN_VOLUME, "secret": secret}]

    @default("volume_mounts")
    def _volume_mounts_default(self):
        return [{"name": TOKEN_VOLUME, "mountPath": self.token_mount, "readOnly": True}]

    def get_env(self):
        env = super().get_env()
        env.update(
            {
                "FACILITY_DASK_NAMESPACE": self.namespace,
                "FACILITY_DASK_IMAGE": self.image,
                "FACILITY_TOKEN_SECRET": self.token_secret_name,
                "FACILITY_TOKEN_MOUNT": self.token_mount,
                "FACILITY_POD_NAME": self.pod_name,
                "FACILITY_OWNER": self.owner,
            }
        )
        return env

    async def start(self):
        for manifest in user_objects(
            self.namespace, self.owner, self.user_role, self.operator_labels
        ):
            await _create(manifest)
        return await super().start()

    @default("environment")
    def _environment_default(self):
        # The pod's own UID, for the owner reference that ties the user's Dask clusters to it.
        return {"FACILITY_POD_UID": {"valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}}
