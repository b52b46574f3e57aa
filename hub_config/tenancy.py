"""A namespace per user: what the hub makes for each user before the user's first server.

Kubernetes' own boundaries then do most of the isolation: a pod can mount only Secrets and
PersistentVolumeClaims of its own namespace and run only as a ServiceAccount of its own
namespace, a Service selects only pods of its own namespace, and each user's rights (RBAC) end
at their namespace. The namespace enforces Pod Security ``restricted``; the chart's admission
policies (``templates/tenancy/``) check every pod, Service and Dask object made in it, whoever
makes it (the user, the dask operator, a controller); NetworkPolicies admit only the user's own
pods, the hub and proxy, and the dask operator; the user's Dask traffic is TLS with a
certificate only this namespace holds (``dask_tls``). See docs/multi-tenancy.md.

Everything here is a plain manifest, so the chart's helm test and the control-plane tests build
exactly what the hub builds.
"""

from __future__ import annotations

from kubespawner.slugs import safe_slug

from analysis_kernels.clusters import OWNER_LABEL

TENANT_LABEL = "analysis-facility/tenant"
"""On a user's namespace: the facility (its hub's namespace) it belongs to. The chart's
admission policies and network policies select user namespaces by it; only the hub may create
a namespace carrying it, and only one named for a user."""

USER_ACCOUNT = "facility-user"
"""The ServiceAccount of the user's server in the user's namespace."""

DASK_TLS_SECRET = "dask-tls"
TOKEN_SECRET = "iam-token"
DASK_PORTS = (8786, 8787, 8788)
"""The scheduler's, its dashboard's and a worker's dashboard: what the dask operator may reach.
A user's own pods reach her Dask pods on every port: workers and nannies listen on ports Dask
picks at start, and the scheduler, the other workers and her client connect to them there."""
SERVER_PORT = 8888
OPERATOR_NAME = "dask-kubernetes-operator"
# The chart's XCache pods (charts/analysis-facility/templates/xcache), in the facility's namespace.
XCACHE_PODS = {
    "matchLabels": {
        "app.kubernetes.io/name": "analysis-facility",
        "app.kubernetes.io/component": "xcache",
    }
}
RESTRICTED = {
    f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")
} | {"pod-security.kubernetes.io/enforce-version": "latest"}


def tenant_namespace(hub_namespace: str, owner: str) -> str:
    """The user's namespace, ``<hub namespace>-u-<owner>``: nothing of Kubernetes', z2jh's or
    the operator's lives under that prefix, and the owner slug is unique per user (too long a
    name is cut and hashed by KubeSpawner's slug rules)."""
    name = f"{hub_namespace}-u-{owner}"
    return name if len(name) <= 63 else safe_slug(name, max_length=63)


def cluster_role(hub_namespace: str, what: str) -> str:
    """The chart's ClusterRoles that the hub binds inside user namespaces (``hub-tenant``,
    ``user``, ``operator-tenant``), named after the facility's namespace."""
    return f"analysis-facility:{hub_namespace}:{what}"


def token_secret(server_name: str) -> str:
    """The Secret holding the user's IAM token for one of the user's servers."""
    return f"{TOKEN_SECRET}-{safe_slug(server_name)}" if server_name else TOKEN_SECRET


def _binding(namespace: str, meta: dict, name: str, role: str, account: str, account_ns: str):
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace, **meta},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": account_ns}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
    }


PRIVATE_RANGES = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
)
PRIVATE_RANGES_V6 = ("fc00::/7", "fe80::/10")


def _to_addresses(addresses: list[tuple[str, int]]) -> list[dict]:
    """Egress rules to single addresses and ports."""
    return [
        {
            "to": [{"ipBlock": {"cidr": f"{address}/{128 if ':' in address else 32}"}}],
            "ports": [{"port": port, "protocol": "TCP"}],
        }
        for address, port in sorted(set(addresses))
    ]


def _network_policies(
    namespace: str,
    meta: dict,
    hub_namespace: str,
    api_server: list[tuple[str, int]],
    hub: list[tuple[str, int]],
    xcache_ports: list[int],
) -> list[dict]:
    """Ingress into the user's namespace: servers from the hub and proxy, Dask pods from the
    user's own pods (any port) and the dask operator (``DASK_PORTS``); nothing else. Peers
    outside the namespace are selected by namespace and pod together, so a label a user puts on a pod of their own never
    passes for the operator, hub or proxy (users cannot make pods in the facility's namespace).

    Egress, as z2jh's for its servers: DNS, the user's own namespace, the hub's API, the
    Kubernetes API server (``api_server``: its addresses and ports, for KubeCluster), a hub
    that runs outside the cluster (``hub``: its API's address and port), the facility's XCache
    pods on ``xcache_ports`` when the site runs one, and the internet (grid storage); no private
    address otherwise, nor the cloud metadata server."""
    facility = {"kubernetes.io/metadata.name": hub_namespace}

    def facility_pods(key: str, values: list[str]) -> dict:
        return {
            "namespaceSelector": {"matchLabels": facility},
            "podSelector": {"matchExpressions": [{"key": key, "operator": "In", "values": values}]},
        }

    def policy(name: str, selector: dict, ingress: list[dict]) -> dict:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace, **meta},
            "spec": {"podSelector": selector, "policyTypes": ["Ingress"], "ingress": ingress},
        }

    def tcp(*ports: int) -> list[dict]:
        return [{"port": p, "protocol": "TCP"} for p in ports]

    dask = {
        "matchExpressions": [
            {"key": "dask.org/component", "operator": "In", "values": ["scheduler", "worker"]}
        ]
    }
    dns = [{"port": 53, "protocol": protocol} for protocol in ("UDP", "TCP")]
    xcache = {
        "to": [{"namespaceSelector": {"matchLabels": facility}, "podSelector": XCACHE_PODS}],
        "ports": tcp(*xcache_ports),
    }
    egress = [
        {"ports": dns},
        {"to": [{"podSelector": {}}]},
        {"to": [facility_pods("component", ["hub"])], "ports": tcp(8081)},
        *_to_addresses(api_server + hub),
        *([xcache] if xcache_ports else []),
        {
            "to": [
                {"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_RANGES)}},
                {"ipBlock": {"cidr": "::/0", "except": list(PRIVATE_RANGES_V6)}},
            ]
        },
    ]
    return [
        policy("deny-ingress", {}, []),
        # z2jh blocks the metadata server with a privileged init container, which Pod Security
        # "restricted" refuses; here it is one of the private addresses egress leaves out.
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "egress", "namespace": namespace, **meta},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": egress},
        },
        policy(
            "server-from-hub-and-proxy",
            {"matchLabels": {"component": "singleuser-server"}},
            [{"from": [facility_pods("component", ["hub", "proxy"])], "ports": tcp(SERVER_PORT)}],
        ),
        policy(
            "dask-from-owner-and-operator",
            dask,
            [
                {"from": [{"podSelector": {}}]},
                {
                    "from": [facility_pods("app.kubernetes.io/name", [OPERATOR_NAME])],
                    "ports": tcp(*DASK_PORTS),
                },
            ],
        ),
    ]


def tenant_objects(
    hub_namespace: str,
    owner: str,
    hub_account: str,
    operator_account: str = OPERATOR_NAME,
    quota: dict | None = None,
    limits: dict | None = None,
    api_server: list[tuple[str, int]] = (),
    hub: list[tuple[str, int]] = (),
    xcache_ports: list[int] = (),
) -> list[dict]:
    """The user's namespace and what it holds before any server starts, in creation order: the
    hub's own rights there come first, since the hub holds none in a new namespace.
    ``api_server`` lists the Kubernetes API server's addresses and ports, and ``hub`` the hub
    API's where the hub is not a pod of the cluster, and ``xcache_ports`` the ports of the
    facility's XCache, which the user's pods may reach."""
    namespace = tenant_namespace(hub_namespace, owner)
    labels = {"app.kubernetes.io/name": "analysis-facility", OWNER_LABEL: owner}
    meta = {"labels": labels}
    objects = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "labels": labels | {TENANT_LABEL: hub_namespace} | RESTRICTED,
            },
        },
        _binding(
            namespace,
            meta,
            "facility-hub",
            cluster_role(hub_namespace, "hub-tenant"),
            hub_account,
            hub_namespace,
        ),
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": USER_ACCOUNT, "namespace": namespace, **meta},
        },
        _binding(
            namespace,
            meta,
            USER_ACCOUNT,
            cluster_role(hub_namespace, "user"),
            USER_ACCOUNT,
            namespace,
        ),
        _binding(
            namespace,
            meta,
            "dask-operator",
            cluster_role(hub_namespace, "operator-tenant"),
            operator_account,
            hub_namespace,
        ),
        *_network_policies(
            namespace, meta, hub_namespace, list(api_server), list(hub), list(xcache_ports)
        ),
    ]
    if quota:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": "facility-user", "namespace": namespace, **meta},
                "spec": {"hard": quota},
            }
        )
    if limits:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "LimitRange",
                "metadata": {"name": "facility-user", "namespace": namespace, **meta},
                "spec": {"limits": [{"type": "Container", **limits}]},
            }
        )
    return objects


def adoptable(labels: dict[str, str] | None, owner: str) -> bool:
    """Whether an object found under a name the hub wanted, with these labels, is this user's:
    made by the facility for this owner. Anything else (z2jh's, Kubernetes', another user's, a
    site's) is never taken over."""
    return (labels or {}).get(OWNER_LABEL) == owner
