"""A real node runs real pods: containers from the busybox image built here, pod networking
through Cilium, Services through kube-proxy, cluster DNS, the API through the ``kubernetes``
Service, volumes from the local-path provisioner, exec and port-forward through the kubelet,
and NetworkPolicies enforced by Cilium."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from charts.node.node import NAME
from tests.node.real_node import (
    apply,
    busybox_pod,
    kubectl,
    pod_ip,
    run_in,
    server_pod,
    wait_running,
    wait_succeeded,
)

pytestmark = pytest.mark.slow

SLEEPER = "exec sleep 3600"


def connects(node, namespace: str, pod: str, address: str, port: int = 8080) -> bool:
    """A TCP connection from ``pod`` to ``address:port`` opens within 3 s."""
    done = run_in(node, namespace, pod, "sh", "-c", f"nc -w 3 {address} {port} </dev/null")
    return done.returncode == 0


def fetch(node, namespace: str, pod: str, url: str) -> subprocess.CompletedProcess:
    """busybox's wget of ``url`` from ``pod``, given 5 s (its own -T crashes this build)."""
    return run_in(node, namespace, pod, "timeout", "5", "wget", "-q", "-O-", url)


def namespace(node, name: str, labels: dict | None = None) -> str:
    apply(
        node,
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels or {}},
        },
    )
    deadline = time.monotonic() + 30  # the ServiceAccount admission needs the default account
    while kubectl(node, "get", "serviceaccount", "-n", name, "-o", "name").strip() == "":
        assert time.monotonic() < deadline, f"no default ServiceAccount in {name}"
        time.sleep(0.3)
    return name


def test_node_is_ready_with_the_control_planes_version(node):
    info = kubectl(
        node,
        "get",
        "node",
        NAME,
        "-o",
        "jsonpath={.status.nodeInfo.kubeletVersion} {.status.nodeInfo.containerRuntimeVersion} {.spec.podCIDR}",
    )
    assert info.split()[0] == "v1.34.4"
    assert info.split()[1].startswith("containerd://1.6")
    assert info.split()[2].startswith("10.244.")
    kubectl(node, "wait", "--for=condition=Ready", f"node/{NAME}", "--timeout=60s")


def test_a_pod_runs_and_logs(node):
    ns = namespace(node, "logs")
    apply(node, busybox_pod("hello", ns, "echo hello from $(hostname)", restartPolicy="Never"))
    assert wait_succeeded(node, ns, "hello").strip() == "hello from hello"


def test_pods_reach_each_other_by_ip_and_through_a_service(node):
    ns = namespace(node, "net")
    apply(
        node,
        server_pod("web", ns, {"app": "web"}),
        busybox_pod("client", ns, SLEEPER),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    wait_running(node, ns, "web", "client")
    by_ip = fetch(node, ns, "client", f"http://{pod_ip(node, ns, 'web')}:8080/")
    assert by_ip.stdout.strip() == "web", by_ip.stderr
    cluster_ip = kubectl(
        node, "get", "service", "-n", ns, "web", "-o", "jsonpath={.spec.clusterIP}"
    )
    assert cluster_ip.startswith("10.96.")
    deadline = time.monotonic() + 30  # kube-proxy writes the Service's rules within a moment
    while True:
        by_service = fetch(node, ns, "client", f"http://{cluster_ip}/")
        if by_service.returncode == 0 or time.monotonic() > deadline:
            break
    assert by_service.stdout.strip() == "web", by_service.stderr
    by_name = fetch(node, ns, "client", f"http://web.{ns}.svc.cluster.local/")
    assert by_name.stdout.strip() == "web", by_name.stderr


def test_cluster_dns_resolves_the_api_servers_service(node):
    ns = namespace(node, "dns")
    apply(node, busybox_pod("resolver", ns, SLEEPER))
    wait_running(node, ns, "resolver")
    looked = run_in(node, ns, "resolver", "nslookup", "kubernetes.default.svc.cluster.local")
    assert looked.returncode == 0, looked.stdout + looked.stderr
    assert "10.96.0.1" in looked.stdout, looked.stdout
    # The short name through the C library's resolver and the pod's search list (busybox's
    # nslookup asks for names as given).
    short = run_in(node, ns, "resolver", "sh", "-c", "nc -w 3 kubernetes.default 443 </dev/null")
    assert short.returncode == 0, short.stderr
    resolv = run_in(node, ns, "resolver", "cat", "/etc/resolv.conf").stdout
    assert "nameserver 10.96.0.10" in resolv


def test_a_pod_reaches_the_api_server_through_the_kubernetes_service(node):
    ns = namespace(node, "api")
    token = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    command = (
        f'timeout 10 wget -q -O- --no-check-certificate --header "Authorization: Bearer $(cat {token})"'
        " https://kubernetes.default.svc/version"
    )
    apply(node, busybox_pod("caller", ns, command, restartPolicy="Never"))
    assert '"gitVersion": "v1.34.4"' in wait_succeeded(node, ns, "caller")


def test_a_claim_binds_and_keeps_what_a_pod_wrote(node):
    ns = namespace(node, "volumes")
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": ns},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Mi"}}},
    }
    volume = {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}
    mount = {"container": {"volumeMounts": [{"name": "data", "mountPath": "/data"}]}}
    apply(
        node,
        claim,
        busybox_pod(
            "writer", ns, "echo kept > /data/file", restartPolicy="Never", **volume, **mount
        ),
    )
    wait_succeeded(node, ns, "writer", timeout=180)
    assert (
        kubectl(node, "get", "pvc", "-n", ns, "data", "-o", "jsonpath={.status.phase}") == "Bound"
    )
    storage_class = kubectl(
        node, "get", "pvc", "-n", ns, "data", "-o", "jsonpath={.spec.storageClassName}"
    )
    assert storage_class == "local-path"  # the default StorageClass
    apply(
        node, busybox_pod("reader", ns, "cat /data/file", restartPolicy="Never", **volume, **mount)
    )
    assert wait_succeeded(node, ns, "reader").strip() == "kept"


def test_exec_and_port_forward_reach_a_pod(node):
    ns = namespace(node, "streams")
    apply(node, server_pod("served", ns))
    wait_running(node, ns, "served")
    assert run_in(node, ns, "served", "cat", "/www/index.html").stdout.strip() == "served"
    forward = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "kubectl"),
            "--kubeconfig",
            str(node.plane.kubeconfig),
            "port-forward",
            "-n",
            ns,
            "pod/served",
            ":8080",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = forward.stdout.readline()
        port = re.search(r"127\.0\.0\.1:(\d+) ->", line)
        assert port, line + forward.stderr.read() if forward.poll() is not None else line
        with urllib.request.urlopen(f"http://127.0.0.1:{port[1]}/", timeout=10) as reply:
            assert reply.read().decode().strip() == "served"
    finally:
        forward.terminate()
        forward.wait(timeout=10)


def test_network_policies_are_enforced(node):
    """Ingress to the server only from pods labelled role=client in its namespace and from
    any pod of a namespace labelled team=friends; every other pod's TCP connect fails.
    Namespaces are labelled before their pods start (Cilium takes seconds to see a new
    namespace label)."""
    ns = namespace(node, "policy")
    friends = namespace(node, "policy-friends", {"team": "friends"})
    others = namespace(node, "policy-others")
    apply(
        node,
        server_pod("server", ns, {"app": "server"}),
        busybox_pod("client", ns, SLEEPER, {"role": "client"}),
        busybox_pod("stranger", ns, SLEEPER),
        busybox_pod("friend", friends, SLEEPER),
        busybox_pod("other", others, SLEEPER),
    )
    for where, name in (
        (ns, "server"),
        (ns, "client"),
        (ns, "stranger"),
        (friends, "friend"),
        (others, "other"),
    ):
        wait_running(node, where, name)
    server = pod_ip(node, ns, "server")
    # Without a policy, everyone connects: a refusal below is the policy's doing.
    for where, name in ((ns, "client"), (ns, "stranger"), (friends, "friend"), (others, "other")):
        assert connects(node, where, name, server), (
            f"{where}/{name} cannot connect even without a policy"
        )
    apply(
        node,
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "server-ingress", "namespace": ns},
            "spec": {
                "podSelector": {"matchLabels": {"app": "server"}},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {"podSelector": {"matchLabels": {"role": "client"}}},
                            {"namespaceSelector": {"matchLabels": {"team": "friends"}}},
                        ]
                    }
                ],
            },
        },
    )
    deadline = time.monotonic() + 60
    while connects(node, ns, "stranger", server):
        assert time.monotonic() < deadline, "the policy was not enforced within 60 s"
    assert not connects(node, others, "other", server), "a pod of an unlabelled namespace connected"
    assert not connects(node, ns, "stranger", server), "a pod without role=client connected"
    assert connects(node, ns, "client", server), "the labelled pod was refused"
    assert connects(node, friends, "friend", server), "the friends' namespace was refused"
    wget = fetch(node, ns, "client", f"http://{server}:8080/")
    assert wget.stdout.strip() == "server"
