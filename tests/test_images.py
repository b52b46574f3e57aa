"""The images are built from one lock: it must cover every import of the code they carry, and
the Dockerfiles must install through it. The images themselves are built here from a Debian
base (images/build.py, `make images`) and checked as the node's containerd gets them."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import tarfile
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml

from charts.offline_chart import OPERATOR, copy_chart

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "images" / "requirements.lock"
OWN = {"analysis_kernels", "hub_config", "z2jh"}  # z2jh: the hub image's own module


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        match = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", line)
        if match:
            pins[normalize(match.group(1))] = match.group(2)
    return pins


def imported_modules(*folders: Path) -> set[str]:
    modules = set()
    for folder in folders:
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - OWN


def test_lock_covers_every_import_of_the_images_code():
    carried = [folder for folder in (ROOT / "images").iterdir() if folder.is_dir()]  # not build.py
    modules = imported_modules(ROOT / "analysis_kernels", ROOT / "hub_config", *carried)
    assert {"uproot", "awkward", "distributed", "oauthenticator", "kubespawner"} <= modules
    providers = packages_distributions()
    pins = locked()
    missing = []
    for module in sorted(modules):
        distributions = {normalize(d) for d in providers.get(module, [module])}
        if not distributions & set(pins):
            missing.append(f"{module} (from {', '.join(sorted(distributions))})")
    assert not missing, f"not in {LOCK.name}: {missing}"


def test_lock_pins_what_notebook_scheduler_and_workers_share():
    pins = locked()
    for name in (
        "dask",
        "distributed",
        "jupyterhub",
        "jupyterlab",
        "dask-labextension",
        "dask-kubernetes",
        "uproot",
        "awkward",
        "hist",
        "root",
        "numpy",
        "cloudpickle",
    ):
        assert name in pins, f"{name} is not pinned in {LOCK.name}"


def test_the_python_dockerfiles_install_through_the_lock():
    for image in ("hub", "hub-base", "analysis", "operator"):
        dockerfile = (ROOT / "images" / image / "Dockerfile").read_text()
        assert "COPY images/requirements.lock /tmp/requirements.lock" in dockerfile, image
        assert "--constraint /tmp/requirements.lock" in dockerfile
        assert "pip check" in dockerfile
    analysis = (ROOT / "images" / "analysis" / "Dockerfile").read_text()
    assert re.search(r"^USER \$\{NB_UID\}$", analysis, re.M), "the analysis image runs as root"


def test_the_hub_image_runs_as_a_numeric_non_root_user():
    hub = (ROOT / "images" / "hub" / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)$", hub, re.M)
    assert users[-1].isdigit() and int(users[-1]) > 0, users


def test_released_image_tags_are_the_charts_app_version():
    """The release workflow tags both images with Chart.yaml's appVersion, and the chart's
    defaults name exactly those tags, so a release never points at images nobody pushed."""
    chart = yaml.safe_load((ROOT / "charts/analysis-facility/Chart.yaml").read_text())
    values = yaml.safe_load((ROOT / "charts/analysis-facility/values.yaml").read_text())
    jupyterhub = values["jupyterhub"]
    assert jupyterhub["hub"]["image"]["tag"] == chart["appVersion"]
    assert jupyterhub["singleuser"]["image"]["tag"] == chart["appVersion"]
    default = jupyterhub["custom"]["facility"]["kubernetes"]["defaultImage"]
    assert default == f"{jupyterhub['singleuser']['image']['name']}:{chart['appVersion']}"
    workflow = yaml.safe_load((ROOT / ".github/workflows/release.yml").read_text())
    steps = workflow["jobs"]["release"]["steps"]
    tags = [s["with"]["tags"] for s in steps if "build-push-action" in s.get("uses", "")]
    assert [t.rsplit("/", 1)[1] for t in tags] == [
        "hub:${{ steps.chart.outputs.app }}",
        "analysis:${{ steps.chart.outputs.app }}",
    ]


# The images themselves, built here by images/build.py (`make images`): from a Debian base,
# with podman and no container runtime. Building them cold takes many minutes; the build is
# cached by version, so with nothing changed the fixture below only checks and returns.

ARCHIVES = ROOT / ".venv" / "images"
# z2jh 4.4.0's proxy image (its chart is not in the repository; the facility's values keep
# z2jh's default), at the version the local facility's proxy runs too.
CHP = "quay.io/jupyterhub/configurable-http-proxy"


@pytest.fixture(scope="module")
def built() -> dict[str, Path]:
    """Every image reference the build exported, with its OCI archive."""
    for tool in ("podman", "mmdebstrap"):
        assert shutil.which(tool), f"{tool} is missing: make images installs it"
    subprocess.run([sys.executable, "images/build.py"], cwd=ROOT, check=True, timeout=3600)
    index = json.loads((ARCHIVES / "index.json").read_text())
    return {reference: ARCHIVES / name for reference, name in index.items()}


def operator_image(tmp_path: Path) -> str:
    """The operator's image as the chart renders its subchart (the pinned one) with our values
    (and the minimal ci values, without which the chart refuses to render)."""
    chart = copy_chart(tmp_path, keep=(OPERATOR,))
    helm = Path(sys.executable).parent / "helm"
    deployment = f"charts/{OPERATOR}/templates/deployment.yaml"
    minimal = chart / "ci" / "minimal-values.yaml"
    result = subprocess.run(
        [
            str(helm),
            "template",
            "facility",
            str(chart),
            "-f",
            str(minimal),
            "--show-only",
            deployment,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    return yaml.safe_load(out)["spec"]["template"]["spec"]["containers"][0]["image"]


def expected_references(tmp_path: Path) -> dict[str, str]:
    values = yaml.safe_load((ROOT / "charts/analysis-facility/values.yaml").read_text())
    hub, user = values["jupyterhub"]["hub"]["image"], values["jupyterhub"]["singleuser"]["image"]
    xcache = values["xcache"]["image"]
    app = yaml.safe_load((ROOT / "charts/analysis-facility/Chart.yaml").read_text())["appVersion"]
    # z2jh 4.4.0 renders configurable-http-proxy 5.2.0 (the local facility may run a later one)
    chp = json.loads((ROOT / "images/chp/package.json").read_text())["dependencies"]
    assert (
        "proxy" not in values["jupyterhub"] or "image" not in values["jupyterhub"]["proxy"]["chp"]
    )
    return {
        "hub": f"{hub['name']}:{hub['tag']}",
        "analysis": f"{user['name']}:{user['tag']}",
        "operator": operator_image(tmp_path),
        "chp": f"{CHP}:{chp['configurable-http-proxy']}",
        "devidp": f"ghcr.io/analysis-facility/devidp:{app}",
        "xcache": f"{xcache['name']}:{xcache['tag']}",
    }


def oci_config(archive: Path) -> tuple[dict, dict]:
    """The archive's index.json and its one image's config, read as containerd reads them."""
    with tarfile.open(archive) as tar:

        def blob(digest: str) -> dict:
            return json.load(tar.extractfile(f"blobs/{digest.replace(':', '/')}"))

        index = json.load(tar.extractfile("index.json"))
        manifest = blob(index["manifests"][0]["digest"])
        return index, blob(manifest["config"]["digest"])["config"]


def in_image(archive: Path, reference: str, *command: str) -> str:
    """``command`` run in a writable container of the image, as the image's user with the
    image's environment (its config, read from ``archive``): buildah mounts the container's
    root filesystem and chroot runs the command there, in a PID namespace of its own. No
    container runtime: podman's would set rlimits this machine forbids."""
    config = oci_config(archive)[1]
    environment = ["HOME=/tmp", *config.get("Env", []), "PYTHONDONTWRITEBYTECODE=1"]
    user = config.get("User") or "0"
    user = user if ":" in user else f"{user}:{user}"
    container = subprocess.run(
        ["buildah", "from", "--pull-never", "-q", reference],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        root = subprocess.run(
            ["buildah", "mount", container], capture_output=True, text=True, check=True
        ).stdout.strip()
        workdir = config.get("WorkingDir") or "/"
        result = subprocess.run(
            [
                "unshare",  # a PID namespace and its own /proc (Dask reads it), gone with it
                "--pid",
                "--fork",
                f"--mount-proc={root}/proc",
                "chroot",
                f"--userspec={user}",
                root,
                "/usr/bin/env",
                "-i",
                *environment,
                "sh",
                "-c",
                'cd "$0" && exec "$@"',
                workdir,
                *command,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        subprocess.run(["buildah", "rm", container], check=True, capture_output=True)
    assert result.returncode == 0, f"{command} in {reference}: {result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.slow
def test_images_are_named_as_the_chart_pulls_them_and_saved_for_containerd(built, tmp_path):
    expected = expected_references(tmp_path)
    assert set(expected.values()) <= set(built), built
    for name, reference in expected.items():
        archive = built[reference]
        assert archive == ARCHIVES / f"{name}.tar" and archive.is_file(), archive
        index, _ = oci_config(archive)
        names = [
            m.get("annotations", {}).get("org.opencontainers.image.ref.name")
            for m in index["manifests"]
        ]
        assert names == [reference], names


@pytest.mark.slow
def test_a_build_waits_for_one_under_way_and_leaves_the_index_whole(built):
    """The node's and the storage grid's tests may both run images/build.py at once: a second
    build waits on the first's lock, so index.json is never written by two builds at a time."""
    import fcntl
    import time

    command = [sys.executable, "images/build.py", "analysis"]
    began = time.monotonic()
    subprocess.run(command, cwd=ROOT, check=True, timeout=600)  # all cached: quick
    unlocked = time.monotonic() - began
    with open(ARCHIVES / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a build under way
        before = json.loads((ARCHIVES / "index.json").read_text())
        waiting = subprocess.Popen(command, cwd=ROOT)
        try:
            with pytest.raises(subprocess.TimeoutExpired):
                waiting.wait(timeout=max(5, 3 * unlocked))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    assert waiting.wait(timeout=600) == 0
    assert json.loads((ARCHIVES / "index.json").read_text()) == before


@pytest.mark.slow
def test_each_image_runs_as_its_chart_expects(built, tmp_path):
    """Users' namespaces and the operator's pod enforce runAsNonRoot: numeric non-root users;
    the entrypoints are the ones the charts rely on (they pass only arguments, or a command)."""
    refs = expected_references(tmp_path)
    configs = {name: oci_config(built[refs[name]])[1] for name in refs}
    assert configs["analysis"]["User"] == "1000"
    assert configs["analysis"]["Entrypoint"] == ["tini", "--"]
    assert configs["analysis"]["Cmd"] == ["jupyterhub-singleuser"]
    assert configs["hub"]["User"] == "1000"
    assert configs["hub"]["Entrypoint"] == ["tini", "--"]
    assert configs["hub"]["Cmd"] == [
        "jupyterhub",
        "--config",
        "/usr/local/etc/jupyterhub/jupyterhub_config.py",
    ]
    assert configs["hub"]["WorkingDir"] == "/srv/jupyterhub"
    assert configs["operator"]["User"] == "1000"
    assert configs["operator"]["Entrypoint"] == [
        "kopf",
        "run",
        "-m",
        "dask_kubernetes.operator.controller",
    ]
    assert configs["chp"]["User"] == "65534"
    assert configs["chp"]["Entrypoint"] == ["configurable-http-proxy"]
    assert configs["devidp"]["Entrypoint"][:2] == ["node", "devidp.mjs"]


@pytest.mark.slow
def test_the_images_run_the_facility_at_the_locked_versions(built, tmp_path):
    """Each image's own code, run as its user: the analysis image's Python imports the facility
    (numba caching its kernels in the user's home) at the lock's versions; the hub's imports
    what z2jh's configuration and the facility's need; the operator's, its controller; the
    proxy and the development IAM run with their node_modules."""
    refs = expected_references(tmp_path)

    def run(name: str, *command: str) -> str:
        return in_image(built[refs[name]], refs[name], *command)

    pins = locked()
    versions = "import importlib.metadata as m, sys; print(*(m.version(n) for n in sys.argv[1:]))"
    analysis = ("dask", "distributed", "dask-kubernetes", "jupyterhub", "uproot", "awkward", "root")
    assert run("analysis", "python3", "-c", versions, *analysis).split() == [
        pins[n] for n in analysis
    ]
    imports = "import analysis_kernels.executor, hub_config.settings, dask_kubernetes, ROOT"
    run("analysis", "python3", "-c", imports)
    hub = ("jupyterhub", "jupyterhub-kubespawner", "oauthenticator", "pycurl")
    assert run("hub", "python3", "-c", versions, *hub).split() == [pins[n] for n in hub]
    # What z2jh's jupyterhub_config.py and the facility's jupyterhub_config.d file import.
    run(
        "hub",
        "python3",
        "-c",
        "import tornado.curl_httpclient, kubernetes_asyncio, kubespawner, "
        "yaml, jupyterhub_idle_culler, hub_config.configure, hub_config.iam_secret",
    )
    assert run("hub", "jupyterhub", "--version").strip() == pins["jupyterhub"]
    run("operator", "python3", "-c", "import dask_kubernetes.operator.controller")
    chp = refs["chp"].rsplit(":", 1)[1]
    assert run("chp", "configurable-http-proxy", "--version").strip() == chp
    run("devidp", "node", "-e", "require.resolve('oidc-provider')")
