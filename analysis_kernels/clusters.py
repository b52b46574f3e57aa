"""The Dask cluster a user gets on the facility, from the JupyterLab sidebar or from code.

dask-labextension calls ``facility_cluster`` (configured by the hub through
``DASK_LABEXTENSION__FACTORY__*``); a notebook may call it too. On the local facility it is a
``LocalCluster`` sized by the server's profile (``CPU_LIMIT``, ``MEM_LIMIT``); on Kubernetes, a
dask-kubernetes ``KubeCluster`` (``analysis_kernels.kube_cluster``) named after the user, in
the user's namespace, with the user's image, mounting the user's token. Both shut down after
``FACILITY_DASK_IDLE_TIMEOUT`` seconds without work. Workers find the user's IAM token through ``BEARER_TOKEN_FILE``.
"""

from __future__ import annotations

import math
import os
import re

from distributed import LocalCluster


def _number(name: str, default: float, environ=os.environ) -> float:
    value = environ.get(name, "")
    try:
        return float(value) if value else default
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None


def local_cluster(asynchronous: bool = False, **options) -> LocalCluster:
    """A LocalCluster with one single-threaded worker per CPU of the server's profile."""
    cpus = _number("CPU_LIMIT", os.cpu_count() or 1)
    workers = max(1, math.floor(cpus))
    memory = _number("MEM_LIMIT", 0)
    defaults = {
        "n_workers": workers,
        "threads_per_worker": 1,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": "127.0.0.1:0",
        "memory_limit": int(memory / workers) if memory else "auto",
        "scheduler_kwargs": {"idle_timeout": _number("FACILITY_DASK_IDLE_TIMEOUT", 1800)},
    }
    return LocalCluster(asynchronous=asynchronous, **(defaults | options))


OWNER_LABEL = "analysis-facility/owner"
"""Whose an object is: the user's DNS-safe name, on the user's namespace and what the facility
makes in it. The hub never takes over an object without it."""


def cluster_name(owner: str) -> str:
    """The name of the user's Dask cluster from the sidebar or ``facility_cluster()``."""
    return f"dask-{owner}"


SCHEDULER_SERVICE = re.compile(
    r"^[a-z0-9-]+-scheduler(\.(?P<namespace>[a-z0-9-]+)(\.svc(\.cluster\.local)?)?)?$"
)


def dashboard_host_allowed(_handler, host: str, environ=os.environ) -> bool:
    """jupyter-server-proxy's host allowlist in the analysis image: the server may proxy the
    dashboards of the user's own Dask schedulers (Services named <cluster>-scheduler in the
    user's namespace, FACILITY_DASK_NAMESPACE), and nothing else beyond localhost. Other
    users' schedulers are out of reach anyway (their namespaces admit no one else)."""
    if host in ("localhost", "127.0.0.1"):
        return True
    match = SCHEDULER_SERVICE.match(host)
    own = environ.get("FACILITY_DASK_NAMESPACE", "")
    return bool(match) and match["namespace"] in (None, own)


POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def kube_cluster_spec(environ: dict[str, str] | None = None, n_workers: int = 0) -> dict:
    """The DaskCluster of the user whose server set ``environ`` (the hub's FACILITY_* values),
    starting with ``n_workers`` (KubeCluster ignores its own ``n_workers`` for a given spec).

    Scheduler and workers use the server's image, run as Pod Security ``restricted`` requires
    (the user's namespace enforces it), without an API token, and mount the user's IAM token
    and Dask certificate at the server's paths; they speak TLS only (``dask_tls``), workers
    reaching the scheduler by its ``tls://`` address. The cluster is owned by the user's pod,
    so it is deleted with it.
    """
    from dask_kubernetes.operator import make_cluster_spec

    from analysis_kernels.dask_tls import SCHEDULER_HTTP_ROUTES, TLS_MOUNT, tls_environment

    env = os.environ if environ is None else environ
    missing = [k for k in KUBE_SETTINGS if not env.get(k)]
    if missing:
        raise ValueError(f"a Kubernetes Dask cluster needs {', '.join(missing)} from the hub")
    name, namespace = env["FACILITY_DASK_CLUSTER_NAME"], env["FACILITY_DASK_NAMESPACE"]
    pod_env = {"BEARER_TOKEN_FILE": env["BEARER_TOKEN_FILE"]} | tls_environment()
    spec = make_cluster_spec(
        name=name,
        image=env["FACILITY_DASK_IMAGE"],
        n_workers=n_workers,
        # distributed's own commands (its dask-scheduler and dask-worker scripts are gone)
        worker_command="dask worker",
        env=pod_env,
        idle_timeout=int(_number("FACILITY_DASK_IDLE_TIMEOUT", 1800, env)),
    )
    spec["metadata"]["labels"] = {OWNER_LABEL: env["FACILITY_OWNER"]}
    spec["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": env["FACILITY_POD_NAME"],
            "uid": env["FACILITY_POD_UID"],
        }
    ]
    secrets = {
        "iam-token": (env["FACILITY_TOKEN_SECRET"], env["FACILITY_TOKEN_MOUNT"]),
        "dask-tls": (env["FACILITY_DASK_TLS_SECRET"], TLS_MOUNT),
    }
    volumes = [
        {"name": v, "secret": {"secretName": s, "defaultMode": 0o440}}
        for v, (s, _) in secrets.items()
    ]
    mounts = [{"name": v, "mountPath": m, "readOnly": True} for v, (_, m) in secrets.items()]
    address = f"tls://{name}-scheduler.{namespace}.svc.cluster.local:8786"
    for role in ("scheduler", "worker"):
        pod = spec["spec"][role]["spec"]
        pod["automountServiceAccountToken"] = False
        pod["securityContext"] = POD_SECURITY | {"fsGroup": 100}
        pod["volumes"] = volumes
        for container in pod["containers"]:
            container["volumeMounts"] = mounts
            container["securityContext"] = CONTAINER_SECURITY
            if role == "scheduler":
                # upstream's args start with the gone dask-scheduler script
                options = container["args"][1:]
                container["args"] = ["dask", "scheduler", *options, "--protocol", "tls"]
                container["env"] += [
                    {"name": k, "value": v} for k, v in SCHEDULER_HTTP_ROUTES.items()
                ]
            else:  # the operator would give workers a tcp:// address
                container["env"].append({"name": "DASK_SCHEDULER_ADDRESS", "value": address})
    return spec


KUBE_SETTINGS = (
    "FACILITY_DASK_CLUSTER_NAME",
    "FACILITY_DASK_IMAGE",
    "FACILITY_DASK_NAMESPACE",
    "FACILITY_TOKEN_SECRET",
    "FACILITY_TOKEN_MOUNT",
    "FACILITY_DASK_TLS_SECRET",
    "FACILITY_POD_NAME",
    "FACILITY_POD_UID",
    "FACILITY_OWNER",
    "BEARER_TOKEN_FILE",
)


def facility_cluster(asynchronous: bool = False, **options):
    """The user's Dask cluster, for the backend the hub configured (local by default)."""
    backend = os.environ.get("FACILITY_CLUSTER_BACKEND", "local")
    if backend == "local":
        return local_cluster(asynchronous=asynchronous, **options)
    if backend == "kubernetes":
        from analysis_kernels.kube_cluster import FacilityKubeCluster

        n_workers = options.pop("n_workers", 0)
        return FacilityKubeCluster(
            custom_cluster_spec=kube_cluster_spec(n_workers=n_workers),
            namespace=os.environ["FACILITY_DASK_NAMESPACE"],
            asynchronous=asynchronous,
            **options,
        )
    raise ValueError(f"FACILITY_CLUSTER_BACKEND={backend!r}: use 'local' or 'kubernetes'")
