"""The throughput harness measures what it says: the raw row decompresses the very baskets
uproot reads, runs last at least their stated length, coffea reads only what a query touches."""

from __future__ import annotations

import time

import pytest

from analysis_kernels.executor.chunks import expand_inputs
from analysis_kernels.generate import DatasetSpec, generate_dataset
from analysis_kernels.schema import open_tree
from benchmarks.pinned import time_runs
from benchmarks.workloads import basket_blocks, declared, decompressors


@pytest.fixture(scope="module")
def adl_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("adl")
    generate_dataset(
        DatasetSpec("adl", files=1, events_per_file=5_000, seed=3), directory, progress=False
    )
    return expand_inputs(directory)


@pytest.mark.parametrize("library", ["reference", "cramjam"])
def test_raw_blocks_decompress_to_the_baskets_uproot_reads(datasets, library):
    files = expand_inputs(datasets["ds"])[:1]
    codecs = decompressors(library)
    tree = open_tree(files[0])
    for name in declared("ds", {}):
        branch = tree[name]
        ours = b"".join(bytes(codecs[a](data, n)) for a, data, n in basket_blocks(files, [name]))
        uproots = b"".join(bytes(branch.basket(i).raw_data) for i in range(branch.num_baskets))
        assert ours == uproots, name


def test_each_timed_run_lasts_at_least_the_minimum():
    calls = []
    result = time_runs(lambda: (calls.append(1), time.sleep(0.01)), min_run_s=0.05, runs=3)
    assert len(result["wall"]["all_s"]) == 3
    for per_call, n in zip(result["wall"]["all_s"], result["calls_per_run"], strict=True):
        assert per_call * n >= 0.05
    assert len(calls) == 1 + sum(result["calls_per_run"])  # the warm-up, then the runs
    assert result["wall"]["min_s"] <= result["wall"]["median_s"] <= result["wall"]["max_s"]


@pytest.mark.parametrize("query", ["q1", "q5", "q8"])
def test_coffea_reads_only_the_branches_the_query_touches(adl_files, query):
    from benchmarks.peers import coffea_adl

    log: list = []
    coffea_adl.adl(query, adl_files, access_log=log)
    touched = {getattr(entry, "branch", entry) for entry in log}
    ours = set(declared(f"adl_{query}", {}))
    counters = {f"n{b.split('_')[0]}" for b in ours if not b.startswith("MET_")}
    assert touched - counters == ours
