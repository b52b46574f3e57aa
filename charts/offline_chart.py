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


def copy_chart(destination: Path, keep: tuple[str, ...] = ()) -> Path:
    """The chart copied into ``destination``, with only the dependencies in ``keep``; the
    operator's is filled in here, any other kept one must be put in ``charts/`` by the caller."""
    chart = Path(destination) / CHART.name
    shutil.copytree(CHART, chart)
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
