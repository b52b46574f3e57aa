"""A real Kubernetes node on this machine, beside the test control plane, for tests and by hand.

containerd with runc runs the pods; kubelet and kube-proxy (iptables mode) come from the
control plane's own Kubernetes module; Cilium is the CNI and enforces NetworkPolicies;
CoreDNS serves cluster DNS behind the ``kube-dns`` Service; rancher's local-path provisioner
binds PVCs through a default StorageClass. The node's address lives on an interface it
creates (a veth end: this kernel has no dummy links), which the API server binds, so pods
reach the API through the ``kubernetes`` Service, and Cilium attaches its programs there, not
to the machine's uplink. Single node: no traffic between machines.

Every process runs as root (Cilium and the kubelet need it); ``stop()`` stops them and puts
the machine back as it was (``host.HostChanges``).

``python -m charts.node.node`` (``make node``) starts one until Ctrl-C and prints the
kubeconfig; ``make node-binaries`` builds what it runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from ipaddress import ip_address
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from analysis_kernels.executor.processes import free_port, stop_in_reverse
from charts.cluster.controlplane import ControlPlane
from charts.node.host import HostChanges, unmount_under
from hub_config.local.pki import pem_key, private_key, signed_certificate, x509_name

REPO = Path(__file__).resolve().parents[2]
BINARIES = REPO / ".venv" / "node" / "bin"
NODE_IMAGES = REPO / ".venv" / "node" / "images"
# Cilium's CRDs and BPF sources, copied from its module by make node-binaries.
CILIUM_FILES = REPO / ".venv" / "node" / "cilium"
FACILITY_IMAGES = REPO / ".venv" / "images"
NAME = "facility-node"
INTERFACE = "facnode0"
ADDRESS = "10.250.0.1"
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
DNS_ADDRESS = "10.96.0.10"
PAUSE_IMAGE = "facility.local/pause:3.10"
BUSYBOX_IMAGE = "facility.local/busybox:node"
CILIUM_SOCKET = Path("/run/cilium/cilium.sock")
HOST_PACKAGES = ("containerd", "runc", "ctr", "iptables", "ipset", "clang-19", "llc-19")


def _wait(what: str, ready, timeout: float, process: subprocess.Popen | None = None, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = Path(log).read_text(errors="replace")[-3000:] if log else ""
            raise RuntimeError(f"{what}: the process exited ({process.returncode}):\n{tail}")
        with contextlib.suppress(OSError, RuntimeError):
            if ready():
                return
        time.sleep(0.5)
    tail = Path(log).read_text(errors="replace")[-3000:] if log else ""
    raise RuntimeError(f"{what}: not ready after {timeout:.0f} s\n{tail}")


def _cilium_healthy() -> bool:
    """The agent's own health over its API socket (what ``cilium status`` asks)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(str(CILIUM_SOCKET))
        sock.sendall(b"GET /v1/healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    body = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    return body.get("cilium", {}).get("state") == "Ok"


def _cgroup2_mount() -> str:
    """Where the machine mounts cgroup v2 (beside v1 here, "hybrid"), so Cilium mounts none."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if " - cgroup2 " in line:
            return line.split()[4]
    raise RuntimeError("no cgroup v2 hierarchy is mounted: Cilium needs one")


class Node:
    """Start with ``start()`` (or ``with``); ``plane`` is its control plane (``kubectl``,
    ``kubeconfig``). ``kwok_nodes`` simulated nodes may sit beside it, tainted so that real
    work lands on the real node; ``kubelet_config`` overrides kubelet settings (say
    ``syncFrequency``)."""

    def __init__(
        self,
        root: Path,
        kwok_nodes: int = 0,
        kubelet_config: dict | None = None,
        binaries: Path = BINARIES,
    ):
        self.root = Path(root)
        self.binaries = binaries
        self.kubelet_config = kubelet_config or {}
        self.logs = self.root / "logs"
        self.host = HostChanges(INTERFACE, ADDRESS)
        self.plane = ControlPlane(
            self.root / "plane",
            nodes=kwok_nodes,
            address=ADDRESS,
            controller_manager_args=[
                "--allocate-node-cidrs",
                f"--cluster-cidr={CLUSTER_CIDR}",
                "--node-cidr-mask-size=24",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
            ],
        )
        self.processes: list[subprocess.Popen] = []
        self.containerd_socket = self.root / "containerd" / "containerd.sock"
        self._started = False

    # -- helpers -----------------------------------------------------------------------------

    def _binary(self, name: str) -> str:
        path = self.binaries / name
        if not path.exists():
            raise RuntimeError(f"{path} is missing: run make node-binaries")
        return str(path)

    def _spawn(self, name: str, command: list[str], env: dict | None = None) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the process owns it
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=os.environ | (env or {})
        )
        self.processes.append(process)
        return process

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return self.plane.kubectl(*args, stdin=stdin)

    def apply(self, objects: list[dict]) -> None:
        done = self.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
        )
        if done.returncode != 0:
            raise RuntimeError(f"kubectl apply: {done.stderr}")

    def _ctr(self, *args: str) -> subprocess.CompletedProcess:
        command = ["ctr", "--address", str(self.containerd_socket), "-n", "k8s.io", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=600)

    def import_images(self, archives: list[Path]) -> None:
        """OCI or docker archives into the node's containerd, under the names they carry;
        pods use them with ``imagePullPolicy: IfNotPresent`` (no registry is reachable)."""
        for archive in archives:
            if not Path(archive).is_file():
                raise FileNotFoundError(f"image archive {archive} does not exist")
            done = self._ctr("images", "import", "--all-platforms", str(archive))
            if done.returncode != 0:
                raise RuntimeError(f"importing {archive}: {done.stderr.strip()}")

    def import_facility_images(self, index: Path = FACILITY_IMAGES / "index.json") -> list[str]:
        """The facility's images built by ``make images`` (``index.json``: reference ->
        archive); returns the references imported."""
        if not index.is_file():
            raise FileNotFoundError(f"{index} is missing: run make images")
        references = json.loads(index.read_text())
        self.import_images([index.parent / archive for archive in references.values()])
        return list(references)

    # -- pieces ------------------------------------------------------------------------------

    def _sign(self, name: str, subject: x509.Name, sans=()) -> tuple[Path, Path]:
        """A certificate and key from the control plane's CA, in its pki directory."""
        pki = self.plane.pki
        ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
        ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
        key = private_key()
        cert = signed_certificate(subject, key, ca.subject, ca_key, sans=sans)
        crt, pem = pki / f"{name}.crt", pki / f"{name}.key"
        crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pem.write_bytes(pem_key(key))
        pem.chmod(0o600)
        return crt, pem

    def _write_kubeconfig(self, name: str, user: str, organization: str) -> Path:
        crt, key = self._sign(name, x509_name(user, organization))
        path = self.root / f"{name}.kubeconfig"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "facility",
                            "cluster": {
                                "server": self.plane.server,
                                "certificate-authority": str(self.plane.pki / "ca.crt"),
                            },
                        }
                    ],
                    "users": [
                        {
                            "name": name,
                            "user": {
                                "client-certificate": str(crt),
                                "client-key": str(key),
                            },
                        }
                    ],
                    "contexts": [
                        {"name": "facility", "context": {"cluster": "facility", "user": name}}
                    ],
                    "current-context": "facility",
                }
            )
        )
        path.chmod(0o600)
        return path

    def _start_containerd(self) -> None:
        """containerd 1.6 with runc and cgroupfs, its own root, state and socket; the process
        may not lower an oom_score_adj here, hence ``restrict_oom_score_adj``."""
        base = self.root / "containerd"
        cni_bin = self.root / "cni" / "bin"
        cni_bin.mkdir(parents=True, exist_ok=True)
        for plugin, source in (
            ("cilium-cni", self.binaries / "cilium-cni"),
            ("loopback", Path("/usr/lib/cni/loopback")),
        ):
            (cni_bin / plugin).symlink_to(source)
        (self.root / "cni" / "net.d").mkdir(parents=True, exist_ok=True)
        config = base / "config.toml"
        base.mkdir(parents=True, exist_ok=True)
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config.write_text(
            f"""version = 2
root = "{base / "root"}"
state = "{base / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{self.containerd_socket}"
[ttrpc]
  address = "{base / "containerd.sock.ttrpc"}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{base / "opt"}"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "{cni_bin}"
  conf_dir = "{self.root / "cni" / "net.d"}"
"""
        )
        process = self._spawn("containerd", ["containerd", "--config", str(config)])
        _wait(
            "containerd",
            lambda: self._ctr("version").returncode == 0,
            60,
            process,
            self.logs / "containerd.log",
        )

    def _start_kubelet(self) -> None:
        kubeconfig = self._write_kubeconfig("kubelet", f"system:node:{NAME}", "system:nodes")
        crt, key = self._sign(
            "node-serving",
            x509_name(NAME),
            [x509.DNSName(NAME), x509.IPAddress(ip_address(ADDRESS))],
        )
        resolv = self.root / "resolv.conf"
        resolv.write_text("")  # pods with dnsPolicy Default get no outside resolver
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": ADDRESS,
            "port": free_port(),
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": free_port(),
            "tlsCertFile": str(crt),
            "tlsPrivateKeyFile": str(key),
            "authentication": {
                "x509": {"clientCAFile": str(self.plane.pki / "ca.crt")},
                "webhook": {"enabled": True},
                "anonymous": {"enabled": False},
            },
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "cgroupDriver": "cgroupfs",
            # The process lacks CAP_SYS_RESOURCE: it may not lower its oom_score_adj nor
            # raise the open-files limit above what it has.
            "oomScoreAdj": 0,
            "maxOpenFiles": 20000,
            "failSwapOn": False,
            "clusterDNS": [DNS_ADDRESS],
            "clusterDomain": "cluster.local",
            "resolvConf": str(resolv),
            # A shared test machine: no evictions nor image collection because of its disk.
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "podPidsLimit": -1,
            **self.kubelet_config,
        }
        path = self.root / "kubelet.yaml"
        path.write_text(yaml.safe_dump(config))
        process = self._spawn(
            "kubelet",
            [
                self._binary("kubelet"),
                f"--config={path}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={self.root / 'kubelet'}",
                f"--hostname-override={NAME}",
                f"--node-ip={ADDRESS}",
                "--v=1",
            ],
        )
        _wait(
            "kubelet registering the node",
            lambda: self.kubectl("get", "node", NAME).returncode == 0,
            120,
            process,
            self.logs / "kubelet.log",
        )

    def _start_cilium(self) -> None:
        """The agent as a host process: native routing on the node's pod CIDR (from the
        controller manager: no operator), no kube-proxy replacement, Hubble, L7 proxy or
        health probes; its own bpffs, a writable copy of its BPF sources (compiled at start
        with clang-19, found on its PATH)."""
        crds = CILIUM_FILES / "crds"
        applied = self.kubectl("apply", "--server-side", "-R", "-f", str(crds))
        if applied.returncode != 0:
            raise RuntimeError(f"Cilium's CRDs: {applied.stderr}")
        waited = self.kubectl(
            "wait", "--for=condition=established", "--timeout=60s", "crd", "--all"
        )
        if waited.returncode != 0:
            raise RuntimeError(f"Cilium's CRDs not established: {waited.stderr}")
        base = self.root / "cilium"
        lib = base / "lib"
        shutil.copytree(CILIUM_FILES / "bpf", lib / "bpf")
        for path in [lib, *lib.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        tools = base / "path"
        tools.mkdir()
        for name, source in (("clang", "clang-19"), ("llc", "llc-19")):
            (tools / name).symlink_to(shutil.which(source))
        bpffs = base / "bpffs"
        bpffs.mkdir()
        subprocess.run(["mount", "-t", "bpf", "bpf", str(bpffs)], check=True)
        process = self._spawn(
            "cilium-agent",
            [
                self._binary("cilium-agent"),
                f"--k8s-kubeconfig-path={self.plane.kubeconfig}",
                "--ipam=kubernetes",
                "--routing-mode=native",
                f"--ipv4-native-routing-cidr={CLUSTER_CIDR}",
                "--enable-ipv4=true",
                "--enable-ipv6=false",
                "--kube-proxy-replacement=false",
                "--enable-hubble=false",
                "--enable-l7-proxy=false",
                "--enable-health-checking=false",
                "--enable-endpoint-health-checking=false",
                "--enable-ipv4-masquerade=false",
                f"--devices={INTERFACE}",
                f"--bpf-root={bpffs}",
                f"--cgroup-root={_cgroup2_mount()}",
                f"--lib-dir={lib}",
                f"--state-dir={base / 'state'}",
                "--cni-exclusive=false",
                "--write-cni-conf-when-ready=",
                "--auto-direct-node-routes=false",
                "--identity-allocation-mode=crd",
                "--cluster-name=default",
                # ipBlock rules select nodes too (as with other enforcers): users' pods reach
                # the API server and a hub beside the node by their addresses, nothing else.
                "--policy-cidr-match-mode=nodes",
            ],
            env={"K8S_NODE_NAME": NAME, "PATH": f"{tools}:{os.environ['PATH']}"},
        )
        _wait("cilium-agent", _cilium_healthy, 300, process, self.logs / "cilium-agent.log")
        conf = {
            "cniVersion": "0.3.1",
            "name": "cilium",
            "plugins": [{"type": "cilium-cni", "log-file": str(self.logs / "cilium-cni.log")}],
        }
        (self.root / "cni" / "net.d" / "05-cilium.conflist").write_text(json.dumps(conf))

    def _start_kube_proxy(self) -> None:
        """iptables mode; it leaves the conntrack sysctls and localhost NodePorts alone."""
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.plane.kubeconfig)},
            "mode": "iptables",
            "clusterCIDR": CLUSTER_CIDR,
            "hostnameOverride": NAME,
            "bindAddress": ADDRESS,
            "healthzBindAddress": f"127.0.0.1:{free_port()}",
            "metricsBindAddress": f"127.0.0.1:{free_port()}",
            "nodePortAddresses": [f"{ADDRESS}/32"],
            "iptables": {"localhostNodePorts": False},
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
        }
        path = self.root / "kube-proxy.yaml"
        path.write_text(yaml.safe_dump(config))
        self._spawn("kube-proxy", [self._binary("kube-proxy"), f"--config={path}"])

    def _start_coredns(self) -> None:
        """CoreDNS on the node's address behind the ``kube-dns`` Service; it answers the
        cluster's names only (nothing is forwarded off this machine)."""
        corefile = self.root / "Corefile"
        corefile.write_text(
            f""".:53 {{
    bind {ADDRESS}
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {self.plane.kubeconfig} facility-test
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
}}
"""
        )
        process = self._spawn("coredns", [self._binary("coredns"), "-conf", str(corefile)])
        ports = [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
        ]
        self.apply(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {
                        "name": "kube-dns",
                        "namespace": "kube-system",
                        "labels": {"k8s-app": "kube-dns"},
                    },
                    "spec": {"clusterIP": DNS_ADDRESS, "ports": ports},
                },
                {
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {
                        "name": "kube-dns-host",
                        "namespace": "kube-system",
                        "labels": {"kubernetes.io/service-name": "kube-dns"},
                    },
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": [ADDRESS], "conditions": {"ready": True}}],
                    "ports": ports,
                },
            ]
        )

        def answers() -> bool:
            with socket.create_connection((ADDRESS, 53), timeout=2):
                return True

        _wait("coredns", answers, 60, process, self.logs / "coredns.log")

    def _start_local_path(self) -> None:
        """rancher's local-path provisioner: volumes are directories under the node's root,
        made and removed by helper pods of the busybox image; its StorageClass is default."""
        namespace = "local-path-storage"
        volumes = self.root / "local-path"
        volumes.mkdir()
        helper = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "helper-pod"},
            "spec": {
                "priorityClassName": "system-node-critical",
                "containers": [
                    {"name": "helper-pod", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never"}
                ],
            },
        }
        setup = 'set -eu\nmkdir -m 0777 -p "$VOL_DIR"\n'
        teardown = 'set -eu\nrm -rf "$VOL_DIR"\n'
        config = {
            "nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [str(volumes)]}]
        }
        self.apply(
            [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "local-path-config", "namespace": namespace},
                    "data": {
                        "config.json": json.dumps(config),
                        "setup": setup,
                        "teardown": teardown,
                        "helperPod.yaml": yaml.safe_dump(helper),
                    },
                },
                {
                    "apiVersion": "storage.k8s.io/v1",
                    "kind": "StorageClass",
                    "metadata": {
                        "name": "local-path",
                        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                    },
                    "provisioner": "rancher.io/local-path",
                    "volumeBindingMode": "WaitForFirstConsumer",
                    "reclaimPolicy": "Delete",
                },
            ]
        )
        self._spawn(
            "local-path-provisioner",
            [
                self._binary("local-path-provisioner"),
                "start",
                f"--kubeconfig={self.plane.kubeconfig}",
                f"--namespace={namespace}",
                f"--helper-image={BUSYBOX_IMAGE}",
                "--configmap-name=local-path-config",
                "--service-account-name=default",
            ],
            env={"POD_NAMESPACE": namespace},
        )

    def _taint_kwok_nodes(self) -> None:
        if self.plane.nodes:
            done = self.kubectl(
                "taint", "nodes", "-l", "type=kwok", "facility.test/simulated=true:NoSchedule"
            )
            if done.returncode != 0:
                raise RuntimeError(f"tainting kwok's nodes: {done.stderr}")

    # -- lifecycle ---------------------------------------------------------------------------

    def _check_machine(self) -> None:
        if os.geteuid() != 0:
            raise RuntimeError("a real node needs root (mounts, network, cgroups)")
        missing = [name for name in HOST_PACKAGES if not shutil.which(name)]
        if missing:
            raise RuntimeError(
                f"missing on this machine: {', '.join(missing)} (make node-binaries)"
            )
        for name in ("kubelet", "kube-proxy", "cilium-agent", "cilium-cni", "coredns"):
            self._binary(name)
        for image in ("pause", "busybox"):
            if not (NODE_IMAGES / f"{image}.tar").exists():
                raise RuntimeError(f"{NODE_IMAGES / image}.tar is missing: run make node-binaries")

    def start(self) -> Node:
        self._check_machine()
        self.root.mkdir(parents=True, exist_ok=True)
        self.host.record()
        # Made by this node from here on: what stop() removes (a node racing this one for the
        # interface fails here and leaves the other's things alone).
        self.host.add_interface()
        self._started = True
        try:
            self.plane.start()
            self._start_containerd()
            self.import_images([NODE_IMAGES / "pause.tar", NODE_IMAGES / "busybox.tar"])
            self._start_kubelet()
            self._start_cilium()
            self._start_kube_proxy()
            _wait(
                "the node Ready",
                lambda: (
                    self.kubectl(
                        "wait", "--for=condition=Ready", f"node/{NAME}", "--timeout=5s"
                    ).returncode
                    == 0
                ),
                180,
            )
            self._start_coredns()
            self._start_local_path()
            self._taint_kwok_nodes()
        except BaseException:
            self.stop()
            raise
        return self

    def _stop_containers(self) -> None:
        """Every container and sandbox killed through containerd, then the shims."""
        listed = self._ctr("tasks", "ls", "-q")
        for task in listed.stdout.split():
            self._ctr("tasks", "kill", "-s", "SIGKILL", task)
        deadline = time.monotonic() + 30
        for task in listed.stdout.split():
            while self._ctr("tasks", "delete", task).returncode != 0:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        for container in self._ctr("containers", "ls", "-q").stdout.split():
            self._ctr("containers", "delete", container)

    def _kill_shims(self) -> None:
        """containerd's shims outlive it; those of this node name its socket."""
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                command = (proc / "cmdline").read_bytes().split(b"\0")
                if (
                    b"containerd-shim" in command[0]
                    and str(self.containerd_socket).encode() in command
                ):
                    os.kill(int(proc.name), signal.SIGKILL)

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        kubelet_first = [p for p in self.processes if "kubelet" in str(p.args[0])]
        stop_in_reverse(kubelet_first, timeout=20)
        self.processes = [p for p in self.processes if p.poll() is None]
        if self.containerd_socket.exists():
            self._stop_containers()
        stop_in_reverse(self.processes, timeout=20)
        self._kill_shims()
        self.plane.stop()
        unmount_under(self.root)
        # Images and containers (the facility's images are GBs); the logs stay.
        for directory in ("containerd", "kubelet"):
            shutil.rmtree(self.root / directory, ignore_errors=True)
        self.host.restore()

    def __enter__(self) -> Node:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="facility-node-"))
    node = Node(root, kwok_nodes=int(os.environ.get("KWOK_NODES", "0")))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even where started ignoring it
    with node:
        if (FACILITY_IMAGES / "index.json").exists():
            print("imported:", ", ".join(node.import_facility_images()), flush=True)
        print(
            f"KUBECONFIG={node.plane.kubeconfig}  (logs in {node.logs}; Ctrl-C stops it)",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
