"""The NanoAOD schema code on the real CMS Open Data file and on generated files."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis_kernels.errors import InputError
from analysis_kernels.schema import COUNTER_TYPES, collections, read_chunk, tree_types


def test_real_nanoaod_types_and_collections(real_nanoaod):
    types = tree_types(uproot.open(real_nanoaod)["Events"])
    assert len(types) == 947
    assert types["Muon_pt"] == "var * float32"
    assert types["Muon_isGlobal"] == "var * bool"
    assert types["Muon_charge"] == "var * int32"
    assert types["nMuon"] == "uint32"
    assert types["event"] == "uint64"
    cols = collections(types)
    assert "Muon_pt" in cols["Muon"] and "Jet_btagDeepFlavB" in cols["Jet"]
    assert "LHEScaleWeight" not in cols  # a counted array, not a collection of fields


def test_real_nanoaod_reads_through_the_same_code(real_nanoaod):
    declared = {"Muon_pt": "var * float32", "Muon_tightId": "var * bool", "MET_pt": "float32"}
    events, nbytes = read_chunk(str(real_nanoaod), declared, 50, 150)
    assert len(events) == 100
    assert events.fields == list(declared)
    assert nbytes > 0
    ref = uproot.open(real_nanoaod)["Events"]["Muon_pt"].array(entry_start=50, entry_stop=150)
    assert ak.array_equal(events.Muon_pt, ref)


@pytest.mark.parametrize("analysis", ["ds", "stop", "dt"])
def test_generated_branches_match_real_nanoaod_types(datasets, real_nanoaod, analysis):
    """Every generated branch that real NanoAOD also has is stored with the same type."""
    real = tree_types(uproot.open(real_nanoaod)["Events"])
    generated = tree_types(uproot.open(datasets[analysis] / f"{analysis}_0000.root")["Events"])
    shared = [b for b in generated if b in real]
    assert {"run", "luminosityBlock", "event"} <= set(shared)
    for name in shared:
        if real[name] in COUNTER_TYPES:
            assert generated[name] in COUNTER_TYPES, name
        else:
            assert generated[name] == real[name], name
    # Each jagged branch X_y is counted by nX, as in NanoAOD; the Ds ntuple's candidate
    # branches (Triplet2_Mass, Mu01_Pt, ...) share nTriplet, as in the seed's ntuples.
    tree = uproot.open(datasets[analysis] / f"{analysis}_0000.root")["Events"]
    for name, kind in generated.items():
        if kind.startswith("var"):
            prefix = name.split("_")[0]
            expected = f"n{prefix}" if f"n{prefix}" in generated else "nTriplet"
            assert tree[name].count_branch.name == expected, name


def test_wrong_type_is_named(tmp_path):
    path = tmp_path / "wrong.root"
    with uproot.recreate(path) as f:
        f.mktree("Events", {"MET_pt": np.float64}).extend({"MET_pt": np.zeros(10)})
    with pytest.raises(
        InputError, match=r"wrong.root.*branch 'MET_pt' has type 'float64'.*expects 'float32'"
    ):
        read_chunk(str(path), {"MET_pt": "float32"}, 0, 10)


def test_missing_tree_and_non_root_file_are_named(tmp_path):
    other = tmp_path / "other.root"
    with uproot.recreate(other) as f:
        f.mktree("Runs", {"run": np.uint32}).extend({"run": np.zeros(3, dtype=np.uint32)})
    with pytest.raises(InputError, match=r"other.root: no tree 'Events' \(the file has: Runs;1\)"):
        read_chunk(str(other), {"run": "uint32"}, 0, 3)
    text = tmp_path / "notes.root"
    text.write_text("not a ROOT file")
    with pytest.raises(InputError, match=r"notes.root: not a readable ROOT file"):
        read_chunk(str(text), {"run": "uint32"}, 0, 3)
    with pytest.raises(InputError, match=r"absent.root: file not found"):
        read_chunk(str(tmp_path / "absent.root"), {"run": "uint32"}, 0, 3)


def test_a_chunk_opens_its_tree_once_and_a_rewritten_file_afresh(tmp_path, monkeypatch):
    """A chunk opens its file's tree once, and later chunks get the tree the first took
    (uproot is not asked again); a file rewritten in place is read anew, never from the
    old tree."""
    from analysis_kernels import schema
    from analysis_kernels.executor.chunks import Chunk
    from analysis_kernels.executor.task import process_chunk

    path = tmp_path / "met.root"
    with uproot.recreate(path) as f:
        f.mktree("Events", {"MET_pt": np.float32}).extend({"MET_pt": np.arange(10, dtype="f4")})
    calls = {"open": 0, "tree": 0}
    for name, key in (("_open", "open"), ("_tree", "tree")):
        original = getattr(schema, name)
        monkeypatch.setattr(schema, name, _counting(original, calls, key))
    for start in (0, 5):
        process_chunk("adl_q1", Chunk(0, str(path), start, start + 5), {})
    assert calls == {"open": 2, "tree": 1}
    with uproot.recreate(path) as f:
        f.mktree("Events", {"MET_pt": np.float32}).extend({"MET_pt": np.full(12, 7, "f4")})
    events, _ = read_chunk(str(path), {"MET_pt": "float32"}, 0, 12)
    assert events.MET_pt.tolist() == [7.0] * 12
    assert calls["tree"] == 2


def _counting(function, calls: dict, key: str):
    def counted(*args):
        calls[key] += 1
        return function(*args)

    return counted
