"""The throughput harness measures what it says: the raw row decompresses the very baskets
uproot reads, runs last at least their stated length, coffea reads only what a query touches."""

from __future__ import annotations

import time

import pytest

from analysis_kernels.executor.chunks import expand_inputs
from analysis_kernels.generate import DatasetSpec, generate_dataset
from analysis_kernels.schema import open_tree
from benchmarks.pinned import measure_together, one_run
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
    run = one_run(lambda: (calls.append(1), time.sleep(0.01)), min_run_s=0.05)
    assert run["wall"] * run["calls"] >= 0.05 and run["calls"] == len(calls) >= 2
    assert 0 < run["cpu"] < run["wall"]  # sleeping uses no CPU


def test_systems_run_in_interleaved_pinned_processes(datasets):
    files = [str(f) for f in expand_inputs(datasets["ds"])[:1]]
    spec = {"analysis": "ds", "files": files, "params": {}, "min_run_s": 0.05}
    out = measure_together({s: {**spec, "system": s} for s in ("io-floor", "raw")}, runs=3)
    for result in out.values():
        assert len(result["wall"]["all_s"]) == 3 and min(result["calls_per_run"]) >= 1
        assert result["wall"]["min_s"] <= result["wall"]["median_s"] <= result["wall"]["max_s"]
        assert len(result["loadavg"]) == 4  # before, and after each round


@pytest.mark.parametrize("query", ["q1", "q5", "q8"])
def test_coffea_reads_only_the_branches_the_query_touches(adl_files, query):
    from benchmarks.peers import coffea_adl

    log: list = []
    coffea_adl.adl(query, adl_files, access_log=log)
    touched = {getattr(entry, "branch", entry) for entry in log}
    ours = set(declared(f"adl_{query}", {}))
    counters = {f"n{b.split('_')[0]}" for b in ours if not b.startswith("MET_")}
    assert touched - counters == ours
