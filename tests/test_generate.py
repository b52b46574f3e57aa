"""The dataset generator: determinism, sizes, codecs, truth, NanoAOD's float precision."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis_kernels.generate import (
    GENERATOR_VERSION,
    DatasetSpec,
    events_for_size,
    generate_dataset,
    load_truth,
)
from analysis_kernels.generate.precision import (
    FULL,
    NANOAOD_BITS,
    mantissa_bits,
    reduce_mantissa,
)


def _arrays(path):
    return uproot.open(path)["Events"].arrays(library="ak")


@pytest.mark.parametrize("analysis", ["ds", "stop", "dt"])
def test_same_seed_same_files_other_seed_other_files(tmp_path, analysis):
    spec = DatasetSpec(analysis, files=1, events_per_file=3000, seed=3)
    generate_dataset(spec, tmp_path / "a", workers=1, progress=False)
    generate_dataset(spec, tmp_path / "b", workers=1, progress=False)
    generate_dataset(
        DatasetSpec(analysis, files=1, events_per_file=3000, seed=4),
        tmp_path / "c",
        workers=1,
        progress=False,
    )
    name = f"{analysis}_0000.root"
    a, b, c = (_arrays(tmp_path / d / name) for d in "abc")
    assert ak.array_equal(a, b)
    assert not ak.array_equal(a, c)


def test_sizes_codec_and_truth_are_recorded(tmp_path):
    spec = DatasetSpec("dt", files=3, events_per_file=2500, codec="LZ4", level=4, seed=5)
    truth = generate_dataset(spec, tmp_path, progress=False)
    files = sorted(tmp_path.glob("*.root"))
    assert [f.name for f in files] == ["dt_0000.root", "dt_0001.root", "dt_0002.root"]
    for f in files:
        root_file = uproot.open(f)
        assert root_file["Events"].num_entries == 2500
        assert str(root_file.file.compression) == "LZ4(4)"
    assert load_truth(tmp_path) == json.loads(json.dumps(truth))
    assert truth["totals"]["events"] == 7500
    assert len(truth["truth"]["chamber_efficiency"]) == 5 * 12 * 4
    # Event numbers are unique across the files of a dataset.
    events = ak.concatenate([_arrays(f).event for f in files])
    assert len(set(ak.to_list(events))) == 7500


def test_size_in_gb_sets_events_per_file():
    events = events_for_size("ds", total_gb=0.01, files=2, codec="ZSTD", level=5)
    # 10 MB over two files at about 100-200 bytes per event.
    assert 20_000 < events < 60_000


def test_bad_parameters_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown codec 'GZIP'"):
        generate_dataset(DatasetSpec("ds", codec="GZIP"), tmp_path, progress=False)
    with pytest.raises(ValueError, match="unknown analysis 'higgs'"):
        generate_dataset(DatasetSpec("higgs"), tmp_path, progress=False)
    with pytest.raises(ValueError, match="at least 1"):
        generate_dataset(DatasetSpec("ds", files=0), tmp_path, progress=False)


def _bits(values) -> np.ndarray:
    """Float bit patterns of ``values`` (hex in the tests below), as uint32."""
    return np.asarray(values, dtype=np.uint32).view(np.float32)


@pytest.mark.parametrize(
    "before, after",
    [
        (0x3F800000, 0x3F800000),  # 1.0 keeps its (empty) mantissa
        (0x3F800FFF, 0x3F800000),  # below half of the dropped unit: cut
        (0x3F801000, 0x3F802000),  # a tie: away from zero in magnitude
        (0xBF801000, 0xBF802000),  # negative tie: away from zero too
        (0xBF80173B, 0xBF802000),  # negative, above half: up in magnitude
        (0x3FFFB000, 0x3FFFC000),  # kept mantissa 1021 rounds up to 1022 (2**10 - 2)
        (0x3FFFDF3B, 0x3FFFC000),  # 1022 does not go up (CMSSW's maxn = 2**bits - 2)
        (0x3FFFF000, 0x3FFFE000),  # all ones: no carry into the exponent, cut instead
        (0x7F7FFFFF, 0x7F7FE000),  # the largest float stays finite
        (0x00000000, 0x00000000),  # zero
        (0x80000000, 0x80000000),  # negative zero
        (0x00001000, 0x00002000),  # subnormal tie
        (0x00000FFF, 0x00000000),  # subnormal below half: to zero
        (0x7F800000, 0x7F800000),  # +inf
        (0xFF800000, 0xFF800000),  # -inf
        (0x7FC00000, 0x7FC00000),  # quiet NaN
        (0x7F800001, 0x7F800001),  # NaN with its payload in the dropped bits stays NaN
        (0xFFC01234, 0xFFC01234),  # negative NaN, bits untouched
    ],
)
def test_reduce_mantissa_rounds_as_cmssw(before, after):
    rounded = reduce_mantissa(_bits([before]), 10)
    assert rounded.dtype == np.float32
    assert hex(int(rounded.view(np.uint32)[0])) == hex(after)


def test_reduce_mantissa_keeps_full_precision_and_is_idempotent():
    rng = np.random.default_rng(0)
    values = rng.normal(0, 100, 10_000).astype(np.float32)
    assert reduce_mantissa(values, 23).tobytes() == values.tobytes()
    once = reduce_mantissa(values, 6)
    assert reduce_mantissa(once, 6).tobytes() == once.tobytes()
    # Half a unit of the 6th bit, or a whole one where CMSSW cuts instead of rounding up (the
    # top two kept mantissas of a binade).
    error = np.abs(once - values) / np.abs(values)
    assert np.all(error <= 2.0**-6) and np.mean(error > 2.0**-7) < 0.05
    with pytest.raises(ValueError, match="mantissa bits"):
        reduce_mantissa(values, 0)


def _used_bits(values) -> int:
    """Mantissa bits the values use: max over them of 23 minus the trailing zero bits."""
    flat = np.asarray(values, dtype=np.float32)
    mantissa = (flat[np.isfinite(flat)].view(np.uint32) & 0x7FFFFF).astype(np.int64)
    mantissa = mantissa[mantissa != 0]
    if mantissa.size == 0:
        return 0
    return 23 - int(np.log2(mantissa & -mantissa).astype(int).min())


def test_precision_table_is_the_real_files(real_nanoaod):
    tree = uproot.open(real_nanoaod)["Events"]
    measured = {}
    for name, branch in tree.items():
        values = np.asarray(ak.flatten(branch.array(library="ak"), axis=None))
        if values.dtype == np.float32 and _used_bits(values) > 0:
            bits = _used_bits(values)
            measured[name] = FULL if bits >= 21 else bits
    assert measured == NANOAOD_BITS
    assert (NANOAOD_BITS["Jet_pt"], NANOAOD_BITS["Jet_eta"], NANOAOD_BITS["Muon_pt"]) == (
        10,
        12,
        FULL,
    )


def test_analogues_of_branches_the_real_file_lacks():
    assert mantissa_bits("MuonExtrap_x") == FULL and mantissa_bits("DTSegment_x") == FULL
    assert mantissa_bits("TrigObj_eta") == mantissa_bits("Track_phi") == 12
    assert mantissa_bits("MET_sumet") == mantissa_bits("MET_sumEt") == 10
    assert mantissa_bits("Track_mass") == mantissa_bits("CustomJet_pt") == 10
    assert mantissa_bits("TrigObj_pt") == mantissa_bits("Triplet2_Mass") == FULL
    assert mantissa_bits("Jet_btag") == mantissa_bits("Jet_btagCSVV2")
    # The Ds ntuple's candidate pT equals, bit for bit, the muon or track pT it came from.
    assert mantissa_bits("Mu01_Pt") == mantissa_bits("Mu02_Pt") == mantissa_bits("Muon_pt")
    assert mantissa_bits("Tr_Pt") == mantissa_bits("Track_pt")


@pytest.mark.parametrize("analysis", ["ds", "stop", "dt", "adl"])
def test_generated_floats_carry_nanoaod_precision(tmp_path, analysis):
    spec = DatasetSpec(analysis, files=1, events_per_file=3000, seed=3)
    generate_dataset(spec, tmp_path, workers=1, progress=False)
    tree = uproot.open(tmp_path / f"{analysis}_0000.root")["Events"]
    floats = 0
    for name, branch in tree.items():
        values = np.asarray(ak.flatten(branch.array(library="ak"), axis=None))
        if values.dtype != np.float32 or name.startswith("n"):
            continue
        floats += 1
        used, allowed = _used_bits(values), mantissa_bits(name)
        assert used <= allowed, (name, used, allowed)
        if len(np.unique(values)) > 100:  # not a constant: uses what it may, full included
            assert used == allowed, (name, used, allowed)
    assert floats >= 5


def test_truth_records_the_generator_version_and_benchmarks_remake_older_data(tmp_path):
    from benchmarks.common import dataset

    target = dataset("dt", tmp_path, 1, 2000, codec="LZ4", seed=2)
    truth_file = target / "truth.json"
    assert load_truth(target)["generator_version"] == GENERATOR_VERSION
    made = truth_file.stat().st_mtime_ns
    assert dataset("dt", tmp_path, 1, 2000, codec="LZ4", seed=2) == target
    assert truth_file.stat().st_mtime_ns == made  # reused
    old = load_truth(target)
    old.pop("generator_version")  # as written before versions
    truth_file.write_text(json.dumps(old))
    dataset("dt", tmp_path, 1, 2000, codec="LZ4", seed=2)
    assert load_truth(target)["generator_version"] == GENERATOR_VERSION
