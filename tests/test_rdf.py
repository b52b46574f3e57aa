"""Distributed RDataFrame (ROOT 6.40, Dask backend) on the facility's clusters, the seeds' way.

Here on separate scheduler and worker processes; tests/test_notebooks.py runs the RDataFrame
notebook on a LocalCluster and compares it with the built-in Ds analysis.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import uproot
from distributed import Client, LocalCluster

ROOT = pytest.importorskip("ROOT")

from analysis_kernels.rdf import _collect_pieces, rdataframe, snapshot  # noqa: E402

# The seeds' pattern: C++ helpers in a header, declared on the client and on every worker.
UTILITIES = """
#pragma once
#include "ROOT/RVec.hxx"
template <typename M, typename C, typename G>
double best_by_chi2(const M &mass, const C &chi2, const G &good) {
  double best = -1, best_chi2 = 1e30;
  for (size_t i = 0; i < mass.size(); ++i)
    if (good[i] && chi2[i] < best_chi2) { best_chi2 = chi2[i]; best = mass[i]; }
  return best;
}
"""
SELECTION = (
    "Triplet2_Mass > 1.62 && Triplet2_Mass < 2.02 && RefittedPV2_NTracks > 1 "
    "&& FlightDistBS_SV_Significance > 2"
)


def selected(df):
    """The seeds' Ds selection, written in RDataFrame, with a declared helper."""
    return (
        df.Define("good", SELECTION)
        .Filter("ROOT::VecOps::Sum(good) > 0")
        .Define("best_mass", "best_by_chi2(Triplet2_Mass, TripletVtx2_Chi2, good)")
    )


def bins(h) -> list[float]:
    return [h.GetBinContent(i) for i in range(h.GetNbinsX() + 2)]


@pytest.fixture(scope="module")
def utilities(tmp_path_factory):
    header = tmp_path_factory.mktemp("cpp") / "Utilities.h"
    header.write_text(UTILITIES)
    ROOT.RDF.Experimental.Distributed.DistributeHeaders(str(header))
    return header


@pytest.fixture(scope="module")
def local(datasets, utilities, tmp_path_factory):
    """The same analysis run locally, single-threaded: the reference."""
    files = [str(p) for p in sorted(datasets["ds"].glob("*.root"))]
    df = selected(ROOT.RDataFrame("Events", files))
    h = df.Histo1D(("mass", "", 62, 1.70, 2.05), "best_mass")
    arrays = df.AsNumpy(["event", "best_mass"])
    path = tmp_path_factory.mktemp("local") / "selected.root"
    df.Snapshot("Selected", str(path), ["event", "best_mass"])
    return {"bins": bins(h), "arrays": arrays, "snapshot": path}


@pytest.mark.slow
def test_distributed_rdataframe_equals_local(datasets, local, dask_processes, tmp_path):
    client = Client(dask_processes.scheduler_address)
    df = selected(rdataframe("Events", datasets["ds"], client, npartitions=4))
    h = df.Histo1D(("mass", "", 62, 1.70, 2.05), "best_mass")
    assert bins(h) == local["bins"] and sum(local["bins"]) > 1000
    arrays = df.AsNumpy(["event", "best_mass"])  # the seeds saw this hang; it returns
    order = np.argsort(arrays["event"])
    assert np.array_equal(arrays["event"][order], np.sort(local["arrays"]["event"]))
    # The harvested distributed Snapshot: one file, the content of a local Snapshot.
    out = tmp_path / "harvest" / "selected.root"
    manifest = snapshot(df, "Selected", out, ["event", "best_mass"], client)
    mine = uproot.open(out)["Selected"].arrays(library="np")
    theirs = uproot.open(local["snapshot"])["Selected"].arrays(library="np")
    for column in ("event", "best_mass"):
        assert np.array_equal(mine[column], theirs[column]), column
    assert (
        manifest["entries"] == len(theirs["event"]) == sum(p["entries"] for p in manifest["pieces"])
    )
    assert len(manifest["pieces"]) >= 2  # written on the workers, gathered here
    assert json.loads((out.parent / "selected.manifest.json").read_text()) == manifest
    client.close()


def test_multithreaded_workers_are_refused_with_a_clear_error(datasets):
    with (
        LocalCluster(n_workers=1, threads_per_worker=2, dashboard_address=None) as cluster,
        Client(cluster) as client,
        pytest.raises(RuntimeError, match=r"single-threaded Dask workers.*\(2 threads\)"),
    ):
        rdataframe("Events", datasets["ds"], client)


def test_a_piece_another_worker_of_the_machine_took_first_is_left_to_it(tmp_path, monkeypatch):
    """Workers of one machine share the scratch directory: a piece listed here but removed
    by another worker before it is read is that worker's to return, not an error; the
    directory of a worker that came last is gone already."""
    (tmp_path / "part_0.root").write_bytes(b"zero")
    listing = os.listdir

    def listed_before_another_worker_took_part_1(directory):
        return [*listing(directory), "part_1.root"]

    monkeypatch.setattr(os, "listdir", listed_before_another_worker_took_part_1)
    assert _collect_pieces(str(tmp_path)) == {"part_0.root": b"zero"}
    assert not tmp_path.exists()
    assert _collect_pieces(str(tmp_path)) == {}
