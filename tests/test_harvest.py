"""Output harvesting (the distributed Snapshot): pieces per chunk, a manifest, one gathered file."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis_kernels import run
from analysis_kernels.analyses.ds_phipi import MASS_AXIS
from analysis_kernels.executor import HarvestSpec, gather


@pytest.mark.parametrize(
    ("fmt", "executor"),
    [("parquet", "serial"), pytest.param("root", "local:2", marks=pytest.mark.slow)],
)
def test_harvest_round_trip(datasets, tmp_path, fmt, executor):
    out = tmp_path / "pieces"
    spec = HarvestSpec(f"file://{out}", fmt, ("event", "BestTriplet_mass"))
    report = run("ds", datasets["ds"], executor=executor, harvest=spec, chunk_size=20_000)
    manifest = report.harvest_manifest
    assert len(manifest) == report.chunks == 6
    assert sum(e["entries"] for e in manifest) == report.summary["candidates"]
    assert all(e["path"].startswith("file://") for e in manifest)
    gathered = gather(manifest, tmp_path / f"all.{fmt}")
    if fmt == "root":
        arrays = uproot.open(gathered)["Snapshot"].arrays(library="ak")
    else:
        arrays = ak.from_parquet(gathered)
    assert arrays.fields == ["event", "BestTriplet_mass"]
    # The harvested masses fill exactly the analysis' histogram.
    h = report.output["mass"].copy().reset()
    h.fill(arrays.BestTriplet_mass)
    assert h == report.output["mass"]
    assert len(np.unique(ak.to_numpy(arrays.event))) == len(arrays)


def test_harvest_refuses_unknown_columns(datasets, tmp_path):
    spec = HarvestSpec(str(tmp_path), "parquet", ("BestTriplet_mass", "Tau_pt"))
    with pytest.raises(
        ValueError,
        match=r"cannot harvest column\(s\) Tau_pt; it offers: run, event, BestTriplet_mass",
    ):
        run("ds", datasets["ds"], harvest=spec)


def test_harvest_format_is_checked():
    with pytest.raises(ValueError, match="unknown harvest format 'csv'"):
        HarvestSpec("/tmp/x", "csv")


def test_gather_of_nothing_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no harvested events"):
        gather(
            [{"source": "a.root", "entry_start": 0, "entry_stop": 1, "entries": 0, "path": None}],
            tmp_path / "x.parquet",
        )
    assert MASS_AXIS.size == 62
