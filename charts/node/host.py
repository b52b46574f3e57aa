"""What a real node changes on this machine outside its own directory, and undoing it.

kubelet, kube-proxy, containerd and Cilium write to fixed places whatever their flags say:
sysctls, iptables chains, ipsets, network namespaces, links, cgroups, a few directories under
/var and /run. ``HostChanges`` records the machine before the node starts and puts back what
can be put back when it stops; ``leftovers()`` lists what is still there, for tests.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

# Sysctls the kubelet, kube-proxy and Cilium were seen to change here.
# kernel.unprivileged_bpf_disabled, which Cilium sets from 2 to 1, is not among them: the
# kernel refuses to lower it again until a reboot.
SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "kernel.timer_migration",
    "net.ipv4.fib_multipath_use_neigh",
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.forwarding",
    "net.ipv4.conf.all.rp_filter",
    "net.ipv4.conf.all.accept_redirects",
    "net.ipv4.conf.default.accept_redirects",
    "net.ipv4.conf.default.rp_filter",
    "net.ipv4.conf.all.route_localnet",
    "net.ipv4.ip_local_reserved_ports",
    "net.core.bpf_jit_enable",
    "net.netfilter.nf_conntrack_max",
)
# Directories the components make at fixed paths; removed if the node made them.
FIXED_DIRECTORIES = (
    Path("/var/lib/kubelet"),
    Path("/var/lib/cni"),
    Path("/var/log/containers"),
    Path("/var/log/pods"),
    Path("/run/cilium"),
    Path("/var/run/cilium"),
    Path("/opt/cni"),
    Path("/etc/cni"),
    Path("/run/netns"),
)
# iptables chains and ipsets the kubelet, kube-proxy and Cilium add.
OWN_CHAINS = re.compile(r"^(KUBE-|CILIUM)")
OWN_LINKS = re.compile(r"^(lxc|cilium_)")
CGROUP_ROOT = Path("/sys/fs/cgroup")
# Where network namespaces are pinned; containerd makes it a mount point of its own.
NETNS = Path("/run/netns")


def _run(*command: str, check: bool = True) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")
    return done.stdout


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctls() -> dict[str, str]:
    return {
        name: _sysctl_path(name).read_text().strip()
        for name in SYSCTLS
        if _sysctl_path(name).exists()
    }


def links() -> list[str]:
    return [line.split()[0].split("@")[0] for line in _run("ip", "-br", "link").splitlines()]


def network_namespaces() -> set[str]:
    directory = NETNS
    return {path.name for path in directory.iterdir()} if directory.is_dir() else set()


def ip_rules() -> list[str]:
    return _run("ip", "rule", "show").splitlines()


def own_chains() -> dict[str, list[str]]:
    """The KUBE-/CILIUM chains still present, per iptables command and table."""
    found = {}
    for command in ("iptables", "ip6tables"):
        for table, lines in _tables(command).items():
            chains = [line[1:].split()[0] for line in lines if line.startswith(":")]
            mine = [chain for chain in chains if OWN_CHAINS.match(chain)]
            if mine:
                found[f"{command} -t {table}"] = mine
    return found


def own_ipsets() -> list[str]:
    if not shutil.which("ipset"):
        return []
    names = _run("ipset", "list", "-n", check=False).split()
    return [name for name in names if OWN_CHAINS.match(name.upper())]


def _tables(command: str) -> dict[str, list[str]]:
    tables: dict[str, list[str]] = {}
    current = None
    for line in _run(f"{command}-save", check=False).splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:], [])
        elif current is not None and line != "COMMIT" and not line.startswith("#"):
            current.append(line)
    return tables


def remove_own_chains() -> None:
    """Rules jumping to KUBE-/CILIUM chains deleted, then those chains flushed and deleted,
    leaving every other rule of the machine as it was."""
    for command in ("iptables", "ip6tables"):
        for table, lines in _tables(command).items():
            chains = [line[1:].split()[0] for line in lines if line.startswith(":")]
            mine = [chain for chain in chains if OWN_CHAINS.match(chain)]
            if not mine:
                continue
            script = [f"*{table}"]
            for line in lines:
                if not line.startswith("-A "):
                    continue
                chain = line.split()[1]
                if not OWN_CHAINS.match(chain) and any(f"-j {c}" in line for c in mine):
                    script.append("-D" + line[2:])
            script += [f"-F {chain}" for chain in mine]
            script += [f"-X {chain}" for chain in mine]
            script.append("COMMIT")
            subprocess.run(
                [f"{command}-restore", "--noflush"],
                input="\n".join(script) + "\n",
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
    for name in own_ipsets():
        _run("ipset", "destroy", name, check=False)


def mounts_under(*roots: Path) -> list[str]:
    """Mount points at or below ``roots``, deepest first."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == str(root) or point.startswith(f"{root}/") for root in roots):
            points.append(point)
    return sorted(set(points), key=len, reverse=True)


def unmount_under(*roots: Path) -> None:
    for point in mounts_under(*roots):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)


def kubepods_cgroups() -> list[Path]:
    """The kubelet's cgroups (kubepods) in every hierarchy, deepest first."""
    found = []
    for hierarchy in [CGROUP_ROOT, *CGROUP_ROOT.iterdir()]:  # v2 alone, or v1 and v2
        top = hierarchy / "kubepods"
        if top.is_dir():
            found += [top, *(path for path in top.rglob("*") if path.is_dir())]
    return sorted(found, key=lambda path: len(path.parts), reverse=True)


def remove_kubepods_cgroups() -> None:
    for path in kubepods_cgroups():
        with contextlib.suppress(OSError):
            path.rmdir()


@dataclass
class HostChanges:
    """The machine as it was before the node, and what the node made (``interface``)."""

    interface: str
    address: str
    sysctls: dict[str, str] = field(default_factory=dict)
    directories: list[Path] = field(default_factory=list)
    namespaces: set[str] = field(default_factory=set)
    rules: list[str] = field(default_factory=list)
    netns_mounted: bool = False

    def record(self) -> None:
        if any(link.startswith(self.interface) for link in links()):
            raise RuntimeError(
                f"interface {self.interface} exists: another node runs here, or one was not "
                f"stopped (ip link del {self.interface}, then stop its processes)"
            )
        self.sysctls = read_sysctls()
        self.directories = [path for path in FIXED_DIRECTORIES if not path.exists()]
        self.namespaces = network_namespaces()
        self.rules = ip_rules()
        self.netns_mounted = bool(mounts_under(NETNS))

    def add_interface(self) -> None:
        """An interface of its own carrying the node's address: the API server binds it and
        Cilium attaches its programs to it, never to the machine's uplink. This kernel has no
        dummy links, so it is one end of a veth pair whose other end stays unused (deleting
        one end deletes both)."""
        _run(
            "ip",
            "link",
            "add",
            self.interface,
            "type",
            "veth",
            "peer",
            "name",
            f"{self.interface}p",
        )
        _run("ip", "addr", "add", f"{self.address}/24", "dev", self.interface)
        _run("ip", "link", "set", f"{self.interface}p", "up")
        _run("ip", "link", "set", self.interface, "up")

    def restore(self) -> None:
        """After every process of the node has stopped."""
        for name in sorted(network_namespaces() - self.namespaces):
            path = NETNS / name
            subprocess.run(["umount", str(path)], capture_output=True)
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
            path.unlink(missing_ok=True)
        if not self.netns_mounted and not network_namespaces():
            unmount_under(NETNS)
        for link in links():
            if OWN_LINKS.match(link) or link.startswith(self.interface):
                subprocess.run(["ip", "link", "delete", link], capture_output=True)
        for rule in reversed(ip_rules()):
            if rule not in self.rules:
                spec = rule.split(":", 1)[1].split()
                subprocess.run(["ip", "rule", "del", *spec], capture_output=True)
        remove_own_chains()
        remove_kubepods_cgroups()
        for path in self.directories:
            unmount_under(path)
            shutil.rmtree(path, ignore_errors=True)
        for name, value in self.sysctls.items():
            if _sysctl_path(name).read_text().strip() != value:
                with contextlib.suppress(OSError):
                    _sysctl_path(name).write_text(value)

    def leftovers(self) -> dict[str, object]:
        """What the node left on the machine; empty when it cleaned up."""
        found = {
            "links": [
                link for link in links() if OWN_LINKS.match(link) or link.startswith(self.interface)
            ],
            "network namespaces": sorted(network_namespaces() - self.namespaces),
            "iptables chains": own_chains(),
            "ipsets": own_ipsets(),
            "ip rules": [rule for rule in ip_rules() if rule not in self.rules],
            "cgroups": [str(path) for path in kubepods_cgroups()],
            "mounts": [] if self.netns_mounted else mounts_under(NETNS),
            "directories": [str(path) for path in self.directories if path.exists()],
            "sysctls": {
                name: (value, now)
                for name, value in self.sysctls.items()
                if (now := _sysctl_path(name).read_text().strip()) != value
            },
        }
        return {kind: what for kind, what in found.items() if what}
