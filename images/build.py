"""The facility's container images, built on this machine: no Docker engine, no registry.

A base from Debian's packages alone (mmdebstrap), then the Dockerfiles under images/ built on
it with podman (``--isolation chroot``: no container runtime), tagged with the names the
chart pulls and saved as OCI archives in .venv/images (index.json maps each reference to its
archive) for a node's containerd (``ctr -n k8s.io images import``). Every image is keyed by a
hash of what goes into it (its folder, the files it copies, its base's key), so a second run
with nothing changed builds and exports nothing.

    python images/build.py [names...] [--force]
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: charts.offline_chart is the chart's truth
    sys.path.insert(0, str(ROOT))

from charts.offline_chart import CHART, OPERATOR_CHART, pinned  # noqa: E402

OUT = ROOT / ".venv" / "images"
IGNORE = ROOT / "images" / "build.dockerignore"
LOCAL = "localhost/analysis-facility"

# Debian trixie: its python3 (3.13) is the Python images/requirements.lock is compiled for,
# and its nodejs (20) is what the development IAM's packages ask for (node:20-slim upstream).
SUITE = "trixie"
MIRRORS = (
    "deb http://deb.debian.org/debian trixie main",
    "deb http://deb.debian.org/debian trixie-updates main",
    "deb http://deb.debian.org/debian-security trixie-security main",
)
# Python 3 and CA certificates; anything else an image needs, its own Dockerfile installs.
# pip comes as python:3.13-slim has it, in /usr/local, from Debian's own pip wheel: Debian's
# python3-pip would bring Debian's packaging, wheel..., which the lock's versions cannot replace.
BASE_PACKAGES = ("python3", "python3-pip-whl", "ca-certificates")
PIP = (
    '--customize-hook=chroot "$1" sh -c \'w=$(echo /usr/share/python-wheels/pip-*.whl)'
    ' && python3 "$w/pip" install --no-index --no-cache-dir --break-system-packages "$w"\''
)
NO_DOCS = (
    *(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "info", "locale")),
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
)
# Debian's python3 refuses pip installs outside a virtual environment (PEP 668); in an image
# whose whole point is the locked environment, installing into /usr/local is the intent.
BASE_CONFIG = ("ENV PIP_BREAK_SYSTEM_PACKAGES=1", "ENV LANG=C.UTF-8", 'CMD ["python3"]')

# The certificate authorities this machine trusts, over the image's own during RUN steps only
# (a bind mount is never committed): pip and npm then reach their registries through a
# TLS-inspecting egress proxy, as the host does.
HOST_CAS = Path("/etc/ssl/certs/ca-certificates.crt")

FACILITY = (
    "images/requirements.lock",
    "pyproject.toml",
    "README.md",
    "analysis_kernels",
    "hub_config",
)


@dataclass(frozen=True)
class Image:
    """One Dockerfile folder under images/, the image it builds on and what it copies; ``npm``:
    the image its build stage installs npm packages in (ARG NPM), when it has one."""

    name: str
    base: str
    copies: tuple[str, ...] = ()
    reference: str = ""  # empty: an intermediate, tagged under LOCAL and not exported
    npm: str = ""

    def needs(self) -> tuple[str, ...]:
        return (self.base, self.npm) if self.npm else (self.base,)


def chart_references() -> dict[str, str]:
    """The image references the chart's values (and the operator subchart's) pull."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    hub, user = values["jupyterhub"]["hub"]["image"], values["jupyterhub"]["singleuser"]["image"]
    xcache = values["xcache"]["image"]
    app = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    operator = yaml.safe_load((OPERATOR_CHART / "values.yaml").read_text())["image"]["name"]
    chp = json.loads((ROOT / "images/chp/package.json").read_text())["dependencies"]
    return {
        "hub": f"{hub['name']}:{hub['tag']}",
        "analysis": f"{user['name']}:{user['tag']}",
        "operator": f"{operator}:{pinned()['dask-kubernetes-operator']['version']}",
        # z2jh's default proxy image, at the version its chart pins (not overridden by ours).
        "chp": f"quay.io/jupyterhub/configurable-http-proxy:{chp['configurable-http-proxy']}",
        "devidp": f"ghcr.io/analysis-facility/devidp:{app}",
        "xcache": f"{xcache['name']}:{xcache['tag']}",
    }


def images() -> dict[str, Image]:
    """Every image in build order, each after its base."""
    refs = chart_references()
    devidp = ("hub_config/local/package.json", "hub_config/local/package-lock.json")
    devidp += ("hub_config/local/devidp.mjs", "hub_config/local/users.yaml")
    found = [
        Image("analysis", "base", (*FACILITY, "images/analysis"), refs["analysis"]),
        Image("hub-base", "base", ("images/requirements.lock",)),
        Image("hub", "hub-base", (*FACILITY, "images/hub"), refs["hub"]),
        Image("operator", "base", ("images/requirements.lock",), refs["operator"]),
        Image("node", "base"),
        Image("npm", "node"),
        Image(
            "chp",
            "node",
            ("images/chp/package.json", "images/chp/package-lock.json"),
            refs["chp"],
            "npm",
        ),
        Image("devidp", "node", devidp, refs["devidp"], "npm"),
        Image("xcache", "base", ("images/xcache",), refs["xcache"]),
    ]
    return {image.name: image for image in found}


def run(*command: str, **kwargs) -> subprocess.CompletedProcess:
    """A command that must succeed; its output goes to ours."""
    return subprocess.run(command, check=True, **kwargs)


def files(paths: tuple[str, ...]) -> list[str]:
    """The files under ``paths`` a build context gives (git's view: tracked and untracked, not
    ignored), so local state such as __pycache__ changes no key."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "--", *paths],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return sorted(p for p in set(listed) if (ROOT / p).is_file())


def key(*parts: str, paths: tuple[str, ...] = ()) -> str:
    """A short hash of ``parts`` and the content of the files under ``paths``."""
    digest = hashlib.sha256("\0".join(parts).encode())
    for path in files(paths) if paths else ():
        digest.update(path.encode() + b"\0" + (ROOT / path).read_bytes())
    return digest.hexdigest()[:16]


def exists(reference: str) -> bool:
    return subprocess.run(["podman", "image", "exists", reference]).returncode == 0


def image_id(reference: str) -> str:
    out = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", reference],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def build_base() -> str:
    """The Debian base, made once per package list and imported into podman's storage."""
    reference = f"{LOCAL}/base:{key(SUITE, *MIRRORS, *BASE_PACKAGES, *NO_DOCS, PIP, *BASE_CONFIG)}"
    if exists(reference):
        return reference
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        tarball = Path(tmp) / "base.tar"
        run(
            "mmdebstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            *NO_DOCS,
            PIP,
            "--format=tar",
            SUITE,
            str(tarball),
            *MIRRORS,
        )
        changes = [arg for change in BASE_CONFIG for arg in ("--change", change)]
        run("podman", "import", *changes, str(tarball), reference)
    return reference


def build(image: Image, tags: dict[str, str]) -> str:
    """``image`` built with podman on the images it needs (``tags``, by name); its key is its
    inputs' and theirs."""
    folder = f"images/{image.name}"
    needed = [tags[name] for name in image.needs()]
    digest = key(*needed, *image.copies, paths=(folder, *image.copies))
    tag = f"{LOCAL}/{image.name}:{digest}"
    if not exists(tag):
        trust = ["-v", f"{HOST_CAS}:{HOST_CAS}:ro"] if HOST_CAS.exists() else []
        # npm's cache, kept between builds (pip's would not help here: the egress proxy's
        # responses carry no caching headers, so pip stores nothing).
        npm = OUT / "cache" / "npm"
        npm.mkdir(parents=True, exist_ok=True)
        caches = ["-v", f"{npm}:/var/cache/npm", "--build-arg", "npm_config_cache=/var/cache/npm"]
        run(
            "podman",
            "build",
            "--isolation",
            "chroot",
            "--layers",
            *trust,
            *caches,
            "--ignorefile",
            str(IGNORE),
            "--build-arg",
            f"BASE={tags[image.base]}",
            *(["--build-arg", f"NPM={tags[image.npm]}"] if image.npm else []),
            "-f",
            f"{folder}/Dockerfile",
            "-t",
            tag,
            str(ROOT),
        )
    for stale in images_named(f"{LOCAL}/{image.name}"):
        if stale != tag:  # an older version's name only: its layers stay as the build cache
            run("podman", "untag", stale, stale)
    if image.reference:
        run("podman", "tag", tag, image.reference)
    return tag


def export(image: Image, index: dict[str, str]) -> None:
    """``image`` saved as an OCI archive, unless the archive already holds this image (its id
    is kept beside it)."""
    archive = OUT / f"{image.name}.tar"
    saved = archive.with_suffix(".id")
    current = image_id(image.reference)
    index[image.reference] = archive.name  # beside index.json
    if archive.exists() and saved.exists() and saved.read_text() == current:
        return
    partial = archive.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    run("podman", "save", "--format", "oci-archive", "-o", str(partial), image.reference)
    partial.replace(archive)
    saved.write_text(current)


def main(argv: list[str] | None = None) -> None:
    known = images()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", help=f"images to build (default: all of {', '.join(known)})"
    )
    parser.add_argument(
        "--force", action="store_true", help="rebuild the Debian base (archive updates)"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(known))
    if unknown:
        parser.error(f"no such image: {', '.join(unknown)} (known: {', '.join(known)})")
    for tool in ("podman", "mmdebstrap"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (Debian package {tool}; `make images` installs it)")
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time (two test workers may ask at once)
        build_all(with_bases(args.names or list(known), known), known, args.force)


def build_all(wanted: list[str], known: dict[str, Image], force: bool) -> None:
    """Build ``wanted`` in order, export those with a reference, and keep index.json current."""
    if force and images_named(f"{LOCAL}/base"):
        run("podman", "rmi", "--force", *images_named(f"{LOCAL}/base"))
    tags = {"base": build_base()}
    index_path = OUT / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    for name in wanted:
        image = known[name]
        started = time.monotonic()
        tags[name] = build(image, tags)
        if image.reference:
            export(image, index)
            partial = index_path.with_suffix(".partial")  # readers never see half a file
            partial.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
            partial.replace(index_path)
        print(f"{name}: {image.reference or tags[name]} ({time.monotonic() - started:.0f} s)")


def with_bases(names: list[str], known: dict[str, Image]) -> list[str]:
    """``names`` and the intermediates they build on, in build order."""
    needed, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name != "base" and name not in needed:
            needed.add(name)
            todo.extend(known[name].needs())
    return [name for name in known if name in needed]


def images_named(repository: str) -> list[str]:
    """The tags of ``repository`` (podman lists every name of an image it matches: filtered)."""
    out = subprocess.run(
        ["podman", "images", "--format", "{{.Repository}}:{{.Tag}}", repository],
        check=True,
        capture_output=True,
        text=True,
    )
    return sorted({name for name in out.stdout.split() if name.startswith(f"{repository}:")})


if __name__ == "__main__":
    main()
