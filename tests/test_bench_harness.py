"""The throughput harness measures what it says: the raw row decompresses the very baskets
uproot reads, runs last at least their stated length, coffea reads only what a query touches,
a ratio is taken round by round, and two runs are compared ratio by ratio."""

from __future__ import annotations

import gc
import json
import os
import statistics
import time
import weakref

import numpy as np
import pytest

from analysis_kernels.executor.chunks import expand_inputs
from analysis_kernels.generate import DatasetSpec, generate_dataset
from analysis_kernels.schema import open_tree
from benchmarks import common, compare, run, throughput
from benchmarks.pinned import (
    _round,
    measure_rounds,
    measure_together,
    one_run,
    prime,
    warm_up,
)
from benchmarks.workloads import STORED, basket_blocks, declared, decompressors

STEADY = [1.0, 1.0, 1.0, 1.0, 1.0]
SLOW_ROUND = [1.0, 1.3, 1.0, 1.0, 1.0]  # the machine busy in round 2


@pytest.fixture(scope="module")
def adl_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("adl")
    generate_dataset(
        DatasetSpec("adl", files=1, events_per_file=5_000, seed=3), directory, progress=False
    )
    return expand_inputs(directory)


@pytest.fixture(scope="module", params=["ZSTD", "LZ4", "LZMA", "ZLIB"])
def ds_file(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(f"ds-{request.param}")
    spec = DatasetSpec("ds", files=1, events_per_file=3_000, codec=request.param, seed=5)
    generate_dataset(spec, directory, progress=False)
    return request.param, expand_inputs(directory)[0]


@pytest.mark.parametrize("library", ["reference", "cramjam"])
def test_raw_blocks_decompress_to_the_baskets_uproot_reads(ds_file, library):
    """Every basket is in the raw row, those stored uncompressed too (most of LZ4's)."""
    codec, ds_file = ds_file
    codecs = decompressors(library)
    tree = open_tree(ds_file)
    algorithms = set()
    for name in declared("ds", {}):
        branch = tree[name]
        parts = []
        for algo, data, size in basket_blocks([ds_file], [name]):
            out = np.full(size, 0xA5, np.uint8)
            codecs[algo](data, out)
            parts.append(out.tobytes())
            algorithms.add(algo)
        uproots = b"".join(bytes(branch.basket(i).raw_data) for i in range(branch.num_baskets))
        assert b"".join(parts) == uproots, name
    assert len(algorithms - {STORED}) == 1  # the file's codec
    assert (STORED in algorithms) == (codec == "LZ4")


def test_each_timed_run_lasts_at_least_the_minimum():
    calls = []
    run = one_run(lambda: (calls.append(1), time.sleep(0.01)), min_run_s=0.05)
    assert run["wall"] * run["calls"] >= 0.05 and run["calls"] == len(calls) >= 2
    assert 0 < run["cpu"] < run["wall"]  # sleeping uses no CPU


class _Cycle:
    def __init__(self):
        self.me = self  # garbage that only a full collection frees


def test_warm_up_calls_for_a_run_and_leaves_no_garbage_behind():
    """The warm-up runs for a timed run's length of CPU time (the systems warm up side by
    side on one core), then collects, so a peer whose calls leave cyclic garbage (coffea)
    starts its first timed run in its steady state."""
    made, walls = [], []

    def call():
        began, busy = time.perf_counter(), time.process_time()
        made.append(weakref.ref(_Cycle()))
        while time.process_time() - busy < 0.01:
            pass
        walls.append(time.perf_counter() - began)

    start = time.process_time()
    try:
        first = warm_up(call, 0.1)
        assert gc.get_freeze_count() > 0  # what the first call left is out of the scans
    finally:
        gc.unfreeze()
    assert time.process_time() - start >= 0.1 and len(made) >= 5
    assert walls[0] <= first < walls[0] + 0.01  # the first call's own time, not the warm-up's
    assert [ref() for ref in made] == [None] * len(made)


def test_a_round_alternates_short_pieces_until_each_system_has_run_its_minimum():
    """Pieces alternate with a rotating order; a system whose one call outlasts a piece
    stops once its minimum is reached instead of running a call per piece."""
    per_call = {"fast": 0.125, "slow": 0.75}
    order = []

    def ask(name, seconds):
        order.append(name)
        return {"wall": per_call[name], "cpu": 0.0, "calls": max(1, int(seconds / per_call[name]))}

    runs = _round(ask, {n: {"min_run_s": 1.0} for n in per_call}, ["fast", "slow"], slices=4)
    assert order == ["fast", "slow", "slow", "fast", "fast", "fast"]
    assert runs["fast"] == {"wall": 0.125, "cpu": 0.0, "calls": 8, "pieces": 4}
    assert runs["slow"] == {"wall": 0.75, "cpu": 0.0, "calls": 2, "pieces": 2}


def test_systems_run_in_interleaved_pinned_processes(datasets):
    files = [str(f) for f in expand_inputs(datasets["ds"])[:1]]
    spec = {"analysis": "ds", "files": files, "params": {}, "min_run_s": 0.05, "warm_up_s": 0.05}
    out = measure_together({s: {**spec, "system": s} for s in ("io-floor", "raw")}, runs=3)
    for result in out.values():
        assert len(result["wall"]["all_s"]) == 3 and min(result["calls_per_run"]) >= 1
        assert min(result["pieces_per_run"]) >= 1
        assert result["wall"]["min_s"] <= result["wall"]["median_s"] <= result["wall"]["max_s"]
        assert len(result["loadavg"]) == 3  # at the start of each round
    pids = [pid for result in out.values() for pid in result["pids"]]
    assert len(set(pids)) == 6 and os.getpid() not in pids  # a process per system and round


def test_rounds_go_round_major_over_the_sets(datasets):
    """Round r of every analysis comes before round r + 1 of any: a row's runs are spread
    over the whole measurement, not taken in one stretch of it."""
    files = [str(f) for f in expand_inputs(datasets["ds"])[:1]]
    spec = {"analysis": "ds", "files": files, "params": {}, "min_run_s": 0.02, "warm_up_s": 0.0}
    sets = {key: {"raw": {**spec, "system": "raw"}} for key in ("a", "b")}
    done = []
    out = measure_rounds(sets, runs=2, progress=lambda r, key: done.append((r, key)))
    assert done == [(0, "a"), (0, "b"), (1, "a"), (1, "b")]
    a, b = out["a"]["raw"]["started"], out["b"]["raw"]["started"]
    assert a[0] < b[0] < a[1] < b[1]


def test_priming_fills_numba_cache_before_the_first_round(datasets, tmp_path, monkeypatch):
    """Every measured process loads the kernels a priming process compiled and cached."""
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    files = [str(f) for f in expand_inputs(datasets["ds"])[:1]]
    prime([{"system": "io-floor", "analysis": "ds", "files": files, "params": {}}])
    assert list(tmp_path.rglob("*.nbi")) and list(tmp_path.rglob("*.nbc"))


def test_a_failed_priming_names_the_system_and_the_analysis(tmp_path):
    missing = str(tmp_path / "missing.root")
    with pytest.raises(RuntimeError, match="priming ours on ds failed"):
        prime([{"system": "ours", "analysis": "ds", "files": [missing], "params": {}}])


@pytest.mark.parametrize("query", ["q1", "q5", "q8"])
def test_coffea_reads_only_the_branches_the_query_touches(adl_files, query):
    from benchmarks.peers import coffea_adl

    log: list = []
    coffea_adl.adl(query, adl_files, access_log=log)
    touched = {getattr(entry, "branch", entry) for entry in log}
    ours = set(declared(f"adl_{query}", {}))
    counters = {f"n{b.split('_')[0]}" for b in ours if not b.startswith("MET_")}
    assert touched - counters == ours


def _row(system: str, runs: list[float]) -> dict:
    """The fields of a Ds, ZSTD throughput row that the ratios and the summary table read."""
    median = statistics.median(runs)
    spread = (max(runs) - min(runs)) / median
    return {
        "analysis": "ds",
        "codec": "ZSTD",
        "system": system,
        "all_s": runs,
        "median_s": median,
        "spread": spread,
        "quoted": spread <= throughput.MAX_SPREAD,
        "events_per_s_per_core": 1000 / median,
    }


def _result(rows: list[dict]) -> dict:
    return {
        "machine": {"date": "2026-11-23T00:00:00+00:00"},
        "rows": rows,
        "events": 1000,
        "adl_events": 4000,
        "clock": "wall",
        "runs": 5,
        "min_run_s": 3.0,
        "max_spread": throughput.MAX_SPREAD,
    }


def _scaled(runs: list[float], factor: float) -> list[float]:
    return [factor * t for t in runs]


def test_a_slow_round_for_every_system_leaves_the_ratio_quoted():
    rows = [
        _row("ours", SLOW_ROUND),
        _row("rdataframe", _scaled(SLOW_ROUND, 10)),
        _row("io-floor", _scaled(SLOW_ROUND, 0.5)),
        _row("raw", _scaled(SLOW_ROUND, 0.25)),
    ]
    ratios = throughput.ratios(rows)[("ds", "ZSTD")]
    assert set(ratios) == {"vs_rdataframe", "over_floor", "floor_of_raw"}  # no coffea row
    assert ratios["vs_rdataframe"]["value"] == pytest.approx(10)
    assert ratios["vs_rdataframe"]["spread"] == pytest.approx(0)
    assert all(k["quoted"] for k in ratios.values())
    assert not any(r["quoted"] for r in rows)  # the rows themselves spread 30%
    table = "\n".join(run._table(_result(rows), "ZSTD"))
    assert (
        "| ds | n.q. (30%) | n.q. (30%) | - | n.q. (30%) | n.q. (30%) | 10.00x | - | 2.00 | 0.50 |"
        in table
    )


def test_a_system_varying_alone_makes_its_ratios_not_quoted():
    rows = [
        _row("ours", SLOW_ROUND),  # slow in round 2, the others not
        _row("rdataframe", _scaled(STEADY, 10)),
        _row("io-floor", _scaled(STEADY, 0.5)),
        _row("raw", _scaled(STEADY, 0.25)),
    ]
    ratios = throughput.ratios(rows)[("ds", "ZSTD")]
    assert not ratios["vs_rdataframe"]["quoted"] and not ratios["over_floor"]["quoted"]
    assert ratios["vs_rdataframe"]["per_round"][1] == pytest.approx(10 / 1.3)
    assert ratios["floor_of_raw"]["quoted"]
    table = "\n".join(run._table(_result(rows), "ZSTD"))
    assert "| n.q. (23%) | - | n.q. (30%) | 0.50 |" in table  # 1 - 10 / 1.3 / 10


def _run_file(tmp_path, name: str, ours_over_floor: float):
    rows = [
        _row("ours", _scaled(STEADY, ours_over_floor)),
        _row("rdataframe", _scaled(STEADY, 10)),
        _row("io-floor", STEADY),
        _row("raw", _scaled(STEADY, 0.5)),
    ]
    path = tmp_path / name
    path.write_text(json.dumps(_result(rows)))
    return path


def test_two_runs_that_agree_compare_clean(tmp_path, capsys):
    a, b = _run_file(tmp_path, "a.json", 2.0), _run_file(tmp_path, "b.json", 2.1)
    assert compare.main([str(a), str(b)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert not [line for line in lines if line.endswith("| DIFFERS |")]
    assert "0 of 3 ratios differ" in lines


def test_a_ratio_differing_over_ten_percent_is_marked_and_fails(tmp_path, capsys):
    a, b = _run_file(tmp_path, "a.json", 2.0), _run_file(tmp_path, "b.json", 2.5)
    assert compare.main([str(a), str(b)]) == 1
    lines = capsys.readouterr().out.splitlines()
    marked = [line for line in lines if line.endswith("| DIFFERS |")]
    # ours slower: both ratios with ours differ by 2 * 0.5 / 4.5 = 22%, the floor's does not
    assert [line.split(" | ")[2] for line in marked] == ["vs_rdataframe", "over_floor"]
    assert "+22.2%" in marked[1] and "2 of 3 ratios differ" in lines


def test_a_ratio_one_run_lacks_is_marked(tmp_path):
    a = _run_file(tmp_path, "a.json", 2.0)
    result = json.loads(a.read_text())
    result["rows"] = [r for r in result["rows"] if r["system"] != "raw"]
    comparison = compare.compare(json.loads(a.read_text()), result)
    (lacking,) = [c for c in comparison if c["differs"]]
    assert lacking["ratio"] == "floor_of_raw" and lacking["b"] is None


def test_a_second_run_on_the_same_day_keeps_the_first_and_compares_with_it(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    first = common.save("throughput", {"rows": [], "n": 1})
    second = common.save("throughput", {"rows": [], "n": 2})
    assert first != second and json.loads(first.read_text())["n"] == 1
    assert compare.latest(tmp_path) == [first, second]
