"""The dataset generator: determinism, sizes, codecs, truth."""

from __future__ import annotations

import json

import awkward as ak
import pytest
import uproot

from analysis_kernels.generate import DatasetSpec, events_for_size, generate_dataset, load_truth


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
