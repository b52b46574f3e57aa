"""The images are built from one lock: it must cover every import of the code they carry, and
both Dockerfiles must install through it. (The images themselves are built by the kind smoke
test; there is no Docker engine here.)"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

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
    modules = imported_modules(ROOT / "analysis_kernels", ROOT / "hub_config", ROOT / "images")
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


def test_both_dockerfiles_install_through_the_lock():
    for image in ("hub", "analysis"):
        dockerfile = (ROOT / "images" / image / "Dockerfile").read_text()
        assert "COPY images/requirements.lock /tmp/requirements.lock" in dockerfile
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
    import yaml

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
