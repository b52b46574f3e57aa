"""The compiled kernels give the histograms of the columnar code they replaced, bin for bin."""

from __future__ import annotations

import awkward as ak
import hist
import numpy as np
import pytest

import tests.previous_kernels as previous
from analysis_kernels import get_analysis
from analysis_kernels.analyses.adl import AXES
from analysis_kernels.executor.chunks import expand_inputs, plan
from analysis_kernels.generate import DatasetSpec, generate_dataset
from analysis_kernels.schema import read_chunk


def chunks(directory, analysis: str, params: dict | None = None, size: int = 20_000):
    """The chunks of a dataset as the executor reads them."""
    spec = get_analysis(analysis)
    branches = spec.branches_for(spec.params(params))
    planned, _, _ = plan(expand_inputs(directory), size)
    for c in planned:
        yield read_chunk(c.file, branches, c.entry_start, c.entry_stop)[0]


def assert_same_output(ours: dict, theirs: dict) -> None:
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        if isinstance(value, dict):
            assert ours[key] == value, key
        else:
            assert np.array_equal(ours[key].values(flow=True), value.values(flow=True)), key
            assert ours[key].sum(flow=True) > 0, key


@pytest.mark.parametrize("mc_truth", [False, True])
def test_ds_kernel_equals_the_columnar_selection(datasets, mc_truth):
    process = get_analysis("ds").process
    prepare = process.prepare
    for events in chunks(datasets["ds"], "ds", {"mc_truth": mc_truth}):
        for part in (events, events[777:5432]):  # also a slice: offsets not starting at 0
            ours, snap = process(part, mc_truth=mc_truth, fd_significance_min=2.5)
            theirs, their_snap = previous.ds_process(
                part, mc_truth=mc_truth, fd_significance_min=2.5
            )
            assert_same_output(ours, theirs)
            assert ak.to_list(snap) == ak.to_list(their_snap)
            # The form the worker's column cache keeps gives the same, snapshot type included.
            kept, kept_snap = process(prepare(part), mc_truth=mc_truth, fd_significance_min=2.5)
            assert_same_output(kept, theirs)
            assert kept_snap.type == snap.type and ak.to_list(kept_snap) == ak.to_list(snap)
        assert prepare(events).nbytes < events.nbytes


@pytest.fixture(scope="module")
def adl_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("adl")
    generate_dataset(
        DatasetSpec("adl", files=1, events_per_file=100_000, seed=11), directory, progress=False
    )
    return directory


@pytest.mark.parametrize("query", ["q5", "q6", "q7", "q8"])
def test_adl_kernels_equal_the_columnar_queries(adl_files, query):
    ours, theirs = get_analysis(f"adl_{query}").process, getattr(previous, f"adl_{query}")
    for events in chunks(adl_files, f"adl_{query}", size=50_000):
        for part in (events, events[123:45_678]):
            assert_same_output(ours(part)[0], theirs(part)[0])


COLUMNAR_LIGHT_QUERIES = {  # the awkward code of Q1-Q4 before the compiled fill
    "q1": lambda ev: {"met": hist.Hist(AXES["met"]).fill(ev.MET_pt)},
    "q2": lambda ev: {"jet_pt": hist.Hist(AXES["jet_pt"]).fill(ak.flatten(ev.Jet_pt))},
    "q3": lambda ev: {
        "jet_pt": hist.Hist(AXES["jet_pt"]).fill(ak.flatten(ev.Jet_pt[abs(ev.Jet_eta) < 1]))
    },
    "q4": lambda ev: {
        "met": hist.Hist(AXES["met"]).fill(ev.MET_pt[ak.sum(ev.Jet_pt > 40, axis=1) >= 2])
    },
}


@pytest.mark.parametrize("query", sorted(COLUMNAR_LIGHT_QUERIES))
def test_light_adl_queries_equal_the_awkward_code(adl_files, query):
    ours, theirs = get_analysis(f"adl_{query}").process, COLUMNAR_LIGHT_QUERIES[query]
    for events in chunks(adl_files, f"adl_{query}", size=50_000):
        for part in (events, events[123:45_678]):
            out, snap = ours(part)
            assert snap is None
            assert_same_output(out, theirs(part))
            assert all(type(h) is hist.Hist for h in out.values())


def test_dt_kernels_equal_the_columnar_tag_and_probe(datasets):
    ours, theirs = get_analysis("dt").process, previous.dt_process
    for events in chunks(datasets["dt"], "dt", size=30_000):
        for part in (events, events[321:23_456]):
            (out, snap), (their_out, their_snap) = ours(part), theirs(part)
            assert_same_output(out, their_out)
            assert ak.to_list(snap) == ak.to_list(their_snap)


def test_stop_variations_pass_equals_the_numpy_loop(datasets):
    """Every variation kind, 100 variations. The yields may differ in the last bits only
    (see analysis_kernels.kernels.stop); the nominal histograms are the same numpy code."""
    for events in chunks(datasets["stop"], "stop", size=10_000):
        (ours, snap), (theirs, their_snap) = (
            fn(events, n_variations=100)
            for fn in (get_analysis("stop").process, previous.stop_process)
        )
        a, b = ours["yields"].view(), theirs["yields"].view()
        assert (b.value != 0).sum() > 100
        np.testing.assert_allclose(a.value, b.value, rtol=1e-12, atol=0)
        np.testing.assert_allclose(a.variance, b.variance, rtol=1e-12, atol=0)
        for name in ("mll", "mt2", "met", "n_jets", "lead_jet_pt"):
            assert ours[name] == theirs[name], name
        assert ours["cutflow"] == theirs["cutflow"]
        assert ak.to_list(snap) == ak.to_list(their_snap)


def test_column_is_the_field_as_awkward_gives_it():
    """``column`` takes a field from the record's own list: the same values as
    ``events[name]``, trimmed to the record's length where the stored column is longer, the
    first of two fields of one name, and awkward's error for a field it lacks."""
    from analysis_kernels.analyses.base import column

    values = np.arange(10, dtype=np.float32)
    contents = [ak.contents.NumpyArray(values), ak.contents.NumpyArray(values * 2)]
    for length in (10, 6):
        events = ak.Array(ak.contents.RecordArray(contents, ["MET_pt", "MET_phi"], length=length))
        for name in ("MET_pt", "MET_phi"):
            assert np.array_equal(column(events, name), ak.to_numpy(events[name]))
            assert len(column(events, name)) == length
    twice = ak.Array(ak.contents.RecordArray(contents, ["x", "x"], length=10))
    assert np.array_equal(column(twice, "x"), values)
    with pytest.raises(ak.errors.FieldNotFoundError):
        column(events, "Jet_pt")
