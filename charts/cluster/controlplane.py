"""A real Kubernetes control plane as plain processes on 127.0.0.1, for tests and by hand.

etcd, kube-apiserver (RBAC, service-account tokens, admission plugins with ResourceQuota and
ValidatingAdmissionPolicy), kube-controller-manager and kube-scheduler, each on free ports,
with certificates made on the spot and an admin kubeconfig. There are no kubelets: with
``nodes``, kwok simulates that many nodes, marks the pods bound to them running, and answers
port forwards to them (``forward``). ``start_dask_operator`` runs the real dask operator
against it.

``python charts/cluster/controlplane.py`` (``make cluster``) starts one and prints the
kubeconfig path; the binaries come from ``make cluster-binaries``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from analysis_kernels.executor.processes import free_port, stop_in_reverse
from hub_config.local.pki import pem_key, private_key, signed_certificate, x509_name

HERE = Path(__file__).resolve().parent
BINARIES = HERE.parents[1] / ".venv" / "k8s"


@dataclass
class ControlPlane:
    """Start with ``start()`` (or ``with``); ``kubeconfig`` is the admin's."""

    root: Path
    binaries: Path = BINARIES
    nodes: int = 0
    # A real node's pods reach the API through the ``kubernetes`` Service, which may not point
    # at loopback: the node gives an address of its own interface here.
    address: str = "127.0.0.1"
    controller_manager_args: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen] = field(default_factory=list, init=False)
    by_name: dict[str, subprocess.Popen] = field(default_factory=dict, init=False)

    def __post_init__(self):
        self.root = Path(self.root)
        self.pki = self.root / "pki"
        self.logs = self.root / "logs"
        self.kubeconfig = self.root / "admin.kubeconfig"
        self.api_port = free_port()

    @property
    def server(self) -> str:
        return f"https://{self.address}:{self.api_port}"

    def _write(self, name: str, data: bytes) -> Path:
        path = self.pki / name
        path.write_bytes(data)
        path.chmod(0o600)
        return path

    def _make_pki(self) -> None:
        self.pki.mkdir(parents=True, exist_ok=True)
        ca_key = private_key()
        ca = signed_certificate(x509_name("facility-test-ca"), ca_key, ca=True)
        self._write("ca.crt", ca.public_bytes(serialization.Encoding.PEM))
        self._write("ca.key", pem_key(ca_key))
        server_key = private_key()
        sans = [
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes.default.svc"),
            *(
                x509.IPAddress(ip_address(address))
                for address in dict.fromkeys(["127.0.0.1", "10.96.0.1", self.address])
            ),
        ]
        server = signed_certificate(
            x509_name("kube-apiserver"), server_key, ca.subject, ca_key, sans=sans
        )
        self._write("apiserver.crt", server.public_bytes(serialization.Encoding.PEM))
        self._write("apiserver.key", pem_key(server_key))
        for name, subject, names in [
            ("admin", x509_name("admin", "system:masters"), []),
            # The API server's client certificate towards the kubelets (kwok's server), and
            # that server's own, for logs and port forwarding through the API server.
            ("kubelet-client", x509_name("kube-apiserver-kubelet-client", "system:masters"), []),
            ("kubelet", x509_name("kwok-kubelet"), [x509.IPAddress(ip_address("127.0.0.1"))]),
        ]:
            key = private_key()
            cert = signed_certificate(subject, key, ca.subject, ca_key, sans=names)
            self._write(f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM))
            self._write(f"{name}.key", pem_key(key))
        account_key = private_key()
        self._write("sa.key", pem_key(account_key))
        self._write(
            "sa.pub",
            account_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )
        self.kubeconfig.write_text(
            f"""apiVersion: v1
kind: Config
clusters:
- name: facility-test
  cluster: {{server: "{self.server}", certificate-authority: "{self.pki / "ca.crt"}"}}
users:
- name: admin
  user: {{client-certificate: "{self.pki / "admin.crt"}", client-key: "{self.pki / "admin.key"}"}}
contexts:
- name: facility-test
  context: {{cluster: facility-test, user: admin, namespace: default}}
current-context: facility-test
"""
        )
        self.kubeconfig.chmod(0o600)

    def _spawn(self, name: str, command: list[str], env: dict | None = None) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the process owns it
        environment = os.environ | (env or {})
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
        self.processes.append(process)
        self.by_name[name] = process
        return process

    def _binary(self, name: str) -> str:
        path = self.binaries / name
        if not path.exists():
            raise RuntimeError(f"{path} is missing: run make cluster-binaries")
        return str(path)

    def get(self, path: str, accept: str = "*/*", timeout: float = 60) -> bytes:
        """One GET of the API server as the admin (``/readyz``, ``/metrics``, any resource)."""
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        context.load_cert_chain(self.pki / "admin.crt", self.pki / "admin.key")
        request = urllib.request.Request(f"{self.server}{path}", headers={"Accept": accept})
        with urllib.request.urlopen(request, context=context, timeout=timeout) as reply:
            return reply.read()

    def _wait_ready(self, process: subprocess.Popen, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log = (self.logs / "kube-apiserver.log").read_text()[-2000:]
                raise RuntimeError(f"kube-apiserver exited ({process.returncode}):\n{log}")
            try:
                self.get("/readyz", timeout=5)
                return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"kube-apiserver not ready after {timeout:.0f} s")

    def start(self) -> ControlPlane:
        self._make_pki()
        etcd_port = free_port()
        self._spawn(
            "etcd",
            [
                self._binary("etcd"),
                f"--data-dir={self.root / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{free_port()}",
                "--log-level=warn",
            ],
        )
        pki = self.pki
        apiserver = self._spawn(
            "kube-apiserver",
            [
                self._binary("kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                f"--bind-address={self.address}",
                f"--advertise-address={self.address}",
                f"--secure-port={self.api_port}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,"
                "ResourceQuota,ValidatingAdmissionPolicy,DefaultStorageClass",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--allow-privileged=false",
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-certificate-authority={pki / 'ca.crt'}",
                f"--kubelet-client-certificate={pki / 'kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'kubelet-client.key'}",
            ],
        )
        self._wait_ready(apiserver)
        kubeconfig = str(self.kubeconfig)
        self._spawn(
            "kube-controller-manager",
            [
                self._binary("kube-controller-manager"),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                "--use-service-account-credentials=true",
                "--leader-elect=false",
                # A busy machine may delay kwok's heartbeats; a simulated node is never lost.
                "--node-monitor-grace-period=5m",
                *self.controller_manager_args,
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                self._binary("kube-scheduler"),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--leader-elect=false",
            ],
        )
        if self.nodes:
            self._start_kwok()
        return self

    def kubectl(
        self, *args: str, stdin: str | None = None, user: str | None = None
    ) -> subprocess.CompletedProcess:
        """kubectl as the admin, or impersonating ``user``."""
        kubectl = Path(sys.executable).parent / "kubectl"
        command = [str(kubectl), "--kubeconfig", str(self.kubeconfig), *args]
        if user:
            command.append(f"--as={user}")
        return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120)

    def _start_kwok(self) -> None:
        """kwok plays the kubelets of ``nodes`` simulated nodes: pods bound to them run, and
        its kubelet server on 127.0.0.1 answers the API server's port forwards (``forward``)."""
        crd = self.binaries / "kwok.x-k8s.io_clusterportforwards.yaml"
        applied = self.kubectl("apply", "--server-side", "-f", str(crd))
        if applied.returncode != 0:
            raise RuntimeError(f"kwok's ClusterPortForward CRD: {applied.stderr}")
        kubelet_port = free_port()
        self._spawn(
            "kwok",
            [
                self._binary("kwok"),
                f"--kubeconfig={self.kubeconfig}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--cidr=10.240.0.0/16",
                "--node-ip=127.0.0.1",
                f"--node-port={kubelet_port}",
                f"--server-address=127.0.0.1:{kubelet_port}",
                f"--tls-cert-file={self.pki / 'kubelet.crt'}",
                f"--tls-private-key-file={self.pki / 'kubelet.key'}",
                "--enable-crds=ClusterPortForward",
                "--node-lease-duration-seconds=40",
            ],
        )
        nodes = [_fake_node(f"kwok-node-{i}") for i in range(self.nodes)]
        created = self.kubectl(
            "apply",
            "-f",
            "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes}),
        )
        if created.returncode != 0:
            raise RuntimeError(f"simulated nodes: {created.stderr}")
        ready = self.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=120s")
        if ready.returncode != 0:
            raise RuntimeError(f"simulated nodes not ready: {ready.stderr}")

    def forward(self, namespace: str, port: int, target: int) -> None:
        """Port forwards to ``port`` of the simulated pods in ``namespace`` reach 127.0.0.1:
        ``target`` (a real process standing in for what the pod would run)."""
        forward = {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterPortForward",
            "metadata": {"name": f"{namespace}-{port}"},
            "spec": {
                "selector": {"matchNamespaces": [namespace]},
                "forwards": [{"ports": [port], "target": {"address": "127.0.0.1", "port": target}}],
            },
        }
        applied = self.kubectl("apply", "-f", "-", stdin=json.dumps(forward))
        if applied.returncode != 0:
            raise RuntimeError(f"port forward {namespace}:{port}: {applied.stderr}")

    def start_dask_operator(
        self, namespace: str | None = None, kubeconfig: Path | None = None
    ) -> subprocess.Popen:
        """The real dask operator controller (kopf, from the dask-kubernetes package) watching
        ``namespace`` (all namespaces, as its chart runs it, when None), as the admin or with
        ``kubeconfig`` (the operator's own account); it stops with the control plane."""
        watch = ["--namespace", namespace] if namespace else ["--all-namespaces"]
        command = [sys.executable, "-m", "kopf", "run", "--standalone", *watch]
        command += ["-m", "dask_kubernetes.operator.controller"]
        config = str(kubeconfig or self.kubeconfig)
        return self._spawn("dask-operator", command, {"KUBECONFIG": config})

    def stop(self) -> None:
        stop_in_reverse(self.processes, timeout=20)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _fake_node(name: str) -> dict:
    capacity = {"cpu": "32", "memory": "128Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"type": "kwok", "kubernetes.io/hostname": name},
        },
        "status": {"allocatable": capacity, "capacity": capacity},
    }


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="facility-cluster-"))
    plane = ControlPlane(root, nodes=3)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with plane:
        print(f"KUBECONFIG={plane.kubeconfig}  (logs in {plane.logs}; Ctrl-C stops it)")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
