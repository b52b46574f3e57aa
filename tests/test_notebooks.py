"""Every shipped example notebook runs (nbclient) and gives the built-in analyses' results."""

from __future__ import annotations

import json
from importlib import resources

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from analysis_kernels import run

pytestmark = pytest.mark.slow

NOTEBOOKS = resources.files("analysis_kernels") / "notebooks"

# For each notebook: what a cell appended to it prints (as JSON), and the same from the built-in.
CHECKS = {
    "ds_phipi.ipynb": (
        "report.output['mass'].values(flow=True).tolist()",
        lambda data: run("ds", data / "ds").output["mass"].values(flow=True).tolist(),
    ),
    "ds_phipi_rdataframe.ipynb": (
        "h.values(flow=True).tolist()",
        lambda data: run("ds", data / "ds").output["mass"].values(flow=True).tolist(),
    ),
    "stop_2l.ipynb": (
        "table.values.tolist()",
        lambda data: (
            run("stop", data / "stop", params={"n_variations": 20})
            .output["yields"]
            .values()
            .sum(axis=2)
            .tolist()
        ),
    ),
    "dt_tnp.ipynb": (
        "report.output['chamber'].values().tolist()",
        lambda data: run("dt", data / "dt").output["chamber"].values().tolist(),
    ),
}


def test_every_shipped_notebook_is_checked():
    assert sorted(p.name for p in NOTEBOOKS.iterdir() if p.name.endswith(".ipynb")) == sorted(
        CHECKS
    )


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_notebook_runs_and_equals_the_builtin_analysis(name, datasets, tmp_path, monkeypatch):
    data = datasets["ds"].parent
    monkeypatch.setenv("FACILITY_SAMPLE_DATA", str(data))
    monkeypatch.setenv("CPU_LIMIT", "1")  # one worker: the machine is shared
    expression, builtin = CHECKS[name]
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(f"import json\nprint(json.dumps({expression}))"))
    NotebookClient(nb, timeout=600, resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
    shown = {k for c in nb.cells for o in c.get("outputs", []) for k in o.get("data", {})}
    assert "image/png" in shown and "text/html" in shown  # inline figures and tables
    result = json.loads(nb.cells[-1].outputs[-1]["text"])
    assert np.array_equal(np.asarray(result), np.asarray(builtin(data)))
