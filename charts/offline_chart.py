"""The umbrella chart as it renders and installs without its chart repositories, which these
machines cannot reach: a copy keeping only the dependencies asked for, with the dask operator
chart taken from the pinned dask-kubernetes package (the same chart, at the pinned version).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dask_kubernetes
import yaml

CHART = Path(__file__).resolve().parent / "analysis-facility"
OPERATOR = "dask-kubernetes-operator"
OPERATOR_CHART = Path(dask_kubernetes.__file__).parent / "operator/deployment/helm" / OPERATOR


def pinned() -> dict[str, dict]:
    """The chart's dependencies by name, as Chart.yaml pins them."""
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    return {d["name"]: d for d in meta["dependencies"]}


def brought_in(name: str, chart: Path = CHART) -> Path | None:
    """A dependency's chart where ``helm dependency build`` puts it (its archive), or unpacked
    there by hand (a directory of that name); None when it is not there."""
    found = [c for c in (chart / "charts").glob(f"{name}*") if _dependency_name(c) == name]
    return max(found, default=None)


def _dependency_name(path: Path) -> str:
    """``jupyterhub`` for ``jupyterhub-4.4.0.tgz`` or a directory ``jupyterhub``."""
    return path.name.rsplit("-", 1)[0] if path.name.endswith(".tgz") else path.name


def copy_chart(destination: Path, keep: tuple[str, ...] = (), source: Path = CHART) -> Path:
    """The chart copied into ``destination``, with only the dependencies in ``keep``; the
    operator's is filled in here, any other kept one must be in ``charts/`` (brought in by
    ``helm dependency build`` or by hand). Helm renders every chart it finds in ``charts/``,
    listed or not, so those not kept are left out of the copy."""
    chart = Path(destination) / CHART.name
    shutil.copytree(source, chart)
    for found in (chart / "charts").glob("*"):
        if (name := _dependency_name(found)) not in keep or name == OPERATOR:
            shutil.rmtree(found) if found.is_dir() else found.unlink()
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["dependencies"] = [d for d in meta["dependencies"] if d["name"] in keep]
    if not meta["dependencies"]:
        del meta["dependencies"]
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta))
    if OPERATOR in keep:
        operator = chart / "charts" / OPERATOR
        shutil.copytree(OPERATOR_CHART, operator)
        operator_meta = yaml.safe_load((operator / "Chart.yaml").read_text())
        version = pinned()[OPERATOR]["version"]
        operator_meta["version"] = operator_meta["appVersion"] = version
        (operator / "Chart.yaml").write_text(yaml.safe_dump(operator_meta))
        # The package ships the chart before chartpress names its image; the published chart
        # of this version runs the operator image of the same version.
        values = operator / "values.yaml"
        values.write_text(values.read_text().replace('"set-by-chartpress"', f'"{version}"'))
    return chart
