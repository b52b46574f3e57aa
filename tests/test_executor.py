"""One executor: identical histograms from every backend, and the accounting of events."""

from __future__ import annotations

import contextlib
import sys

import numpy as np
import pytest

from analysis_kernels import run
from analysis_kernels.generate import load_truth
from tests.outputs import same_output
from tests.worker_kill import first_worker_killed_executing

PARAMS = {"ds": {}, "stop": {"n_variations": 25}, "dt": {}}


@pytest.mark.slow
@pytest.mark.parametrize("analysis", ["ds", "stop", "dt"])
def test_serial_local_and_scheduler_give_identical_histograms(datasets, dask_processes, analysis):
    """Bin for bin, variances included: serial, a LocalCluster, separate worker processes."""
    reports = [
        run(analysis, datasets[analysis], executor=ex, params=PARAMS[analysis], chunk_size=7000)
        for ex in ("serial", "local:2", dask_processes.scheduler_address)
    ]
    for other in reports[1:]:
        same_output(reports[0].output, other.output)
        assert other.summary == reports[0].summary
        assert other.events_processed == reports[0].events_processed == reports[0].events_total
        assert other.bytes_read == reports[0].bytes_read


def test_report_accounts_for_every_event(datasets):
    report = run("dt", datasets["dt"], chunk_size=25_000)
    truth = load_truth(datasets["dt"])
    assert report.events_total == report.events_processed == truth["totals"]["events"]
    assert report.complete and report.events_failed == 0
    assert report.chunks == 2 * 3  # 60k events per file in chunks of 25k
    assert sorted(v["processed"] for v in report.events_per_file.values()) == [60_000, 60_000]
    assert report.bytes_read > 0 and report.cpu_time > 0 and report.wall_time > 0
    assert report.summary["cutflow"]["events"] == report.events_processed


def test_report_saves_numbers_and_histograms(datasets, tmp_path):
    import json
    import pickle

    report = run("ds", datasets["ds"])
    json_path, hist_path = report.save(tmp_path)
    data = json.loads(json_path.read_text())
    assert data["events_processed"] == report.events_processed and "output" not in data
    assert pickle.loads(hist_path.read_bytes())["mass"] == report.output["mass"]


@pytest.mark.parametrize(
    ("executor", "message"),
    [
        ("local:zero", "positive integer"),
        ("spark://x", "unknown executor"),
        ("local:0", "positive integer"),
    ],
)
def test_bad_executor_is_named(datasets, executor, message):
    with pytest.raises(ValueError, match=message):
        run("ds", datasets["ds"], executor=executor)


def test_kube_without_dask_kubernetes_says_what_to_install(datasets, monkeypatch):
    """An environment without dask-kubernetes (a None entry in sys.modules fails its import)."""
    monkeypatch.setitem(sys.modules, "dask_kubernetes.operator", None)
    with pytest.raises(RuntimeError, match=r"pip install 'analysis-facility\[kube\]'"):
        run("ds", datasets["ds"], executor="kube")


def test_no_input_files_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no input files found"):
        run("ds", tmp_path)


@pytest.mark.slow
def test_rerun_with_a_new_cut_reads_nothing_from_storage(datasets):
    """Columns stay in worker memory: a re-run after changing a cut equals a cold run."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=None, host="127.0.0.1"
        ) as cluster,
        Client(cluster) as client,
    ):
        cold = run("ds", datasets["ds"], executor=client, chunk_size=20_000, cache=True)
        warm = run(
            "ds",
            datasets["ds"],
            executor=client,
            chunk_size=20_000,
            cache=True,
            params={"fd_significance_min": 4.0},
        )
        assert cold.bytes_read > 0
        assert warm.bytes_read < cold.bytes_read / 3  # chunks found their worker's columns
    reference = run("ds", datasets["ds"], chunk_size=20_000, params={"fd_significance_min": 4.0})
    assert warm.output["mass"] == reference.output["mass"]
    assert warm.output["mass"].sum() < cold.output["mass"].sum()


@contextlib.contextmanager
def _two_workers():
    """A client of a LocalCluster of two single-threaded worker processes."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=None, host="127.0.0.1"
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.mark.slow
def test_a_rerun_is_one_batch_per_worker_and_reads_nothing(datasets):
    """Cached chunks go back to their worker as one task; outcomes stay per chunk."""
    from distributed import get_task_stream

    with _two_workers() as client:
        cold = run("ds", datasets["ds"], executor=client, chunk_size=7000, cache=True)
        with get_task_stream(client) as stream:
            warm = run(
                "ds",
                datasets["ds"],
                executor=client,
                chunk_size=7000,
                cache=True,
                params={"fd_significance_min": 4.0, "mc_truth": False},
            )
        keys = [t["key"] for t in stream.data]
    assert cold.bytes_read > 0 and warm.bytes_read == 0  # every chunk found its columns
    assert warm.chunks == cold.chunks == 18  # 2 x 60k events in chunks of 7000
    assert 1 <= len(keys) <= 2 and all("-batch-" in str(k) for k in keys), keys
    assert warm.complete and warm.events_processed == warm.events_total
    assert sorted(v["processed"] for v in warm.events_per_file.values()) == [60_000, 60_000]
    serial = run("ds", datasets["ds"], chunk_size=7000, params={"fd_significance_min": 4.0})
    same_output(serial.output, warm.output)


def _every_chunk_held(analysis, chunks, params, cache=True, **_):
    """A worker that claims every chunk: each becomes part of a batch, cached or not."""
    return [c.index for c in chunks]


@pytest.fixture
def ds_with_a_bad_basket(tmp_path):
    """Two Ds files (ZLIB, whose baskets carry a checksum); the first has a corrupt Muon_pt
    basket, so its bad chunks come between good ones in the order of the chunks."""
    import uproot

    from analysis_kernels.generate import DatasetSpec, generate_dataset

    generate_dataset(
        DatasetSpec("ds", files=2, events_per_file=60_000, codec="ZLIB", level=1, seed=5),
        tmp_path,
        progress=False,
    )
    path = tmp_path / "ds_0000.root"
    branch = uproot.open(path)["Events"]["Muon_pt"]
    seek, size = int(branch.member("fBasketSeek")[1]), int(branch.member("fBasketBytes")[1])
    start, _ = branch.basket_entry_start_stop(1)
    with open(path, "r+b") as f:
        f.seek(seek + size // 2)
        f.write(b"\xde\xad\xbe\xef" * 64)
    return tmp_path, path, start


@pytest.mark.slow
def test_bad_input_in_a_batch_is_named_and_accounted(ds_with_a_bad_basket, monkeypatch):
    """A chunk that cannot be read in the middle of a batch: the error names its file and
    range, or with skip_bad only that chunk fails and the batch goes on."""
    from distributed import get_task_stream

    import analysis_kernels.executor as executor
    from analysis_kernels.errors import InputError

    directory, path, start = ds_with_a_bad_basket
    first_bad = start // 10_000 * 10_000
    assert first_bad > 0  # good chunks of the same file before it, of the next file after
    monkeypatch.setattr(executor, "held_chunks", _every_chunk_held)
    serial = run("ds", directory, chunk_size=10_000, skip_bad=True)
    with _two_workers() as client:
        with pytest.raises(InputError, match=rf"ds_0000.root entries \[{first_bad}, \d+\)"):
            run("ds", directory, executor=client, chunk_size=10_000, cache=True)
        with get_task_stream(client) as stream:
            report = run(
                "ds", directory, executor=client, chunk_size=10_000, cache=True, skip_bad=True
            )
        keys = [t["key"] for t in stream.data]
    assert len(keys) == 1 and "-batch-" in str(keys[0]), keys  # all 12 chunks, one task
    failed = [(f["file"], f["entry_start"], f["entry_stop"]) for f in report.failed_chunks]
    assert failed == [(f["file"], f["entry_start"], f["entry_stop"]) for f in serial.failed_chunks]
    assert failed[0] == (str(path), first_bad, first_bad + 10_000)
    assert report.events_processed + report.events_failed == report.events_total == 120_000
    assert report.events_processed == serial.events_processed
    assert report.events_per_file[str(directory / "ds_0001.root")]["processed"] == 60_000
    same_output(serial.output, report.output)


@pytest.mark.slow
def test_worker_killed_mid_batch_changes_nothing(datasets):
    """SIGKILL a worker while it runs its batch of cached chunks: Dask runs the batch again on
    the other worker, which reads those chunks from storage; the result is unchanged."""
    from distributed import Client

    from analysis_kernels.executor.processes import DaskProcesses

    params = {"n_variations": 1000}
    serial = run("stop", datasets["stop"], params=params, chunk_size=1500)
    cluster = DaskProcesses(n_workers=2)
    try:
        address = cluster.scheduler_address
        cold = run(
            "stop", datasets["stop"], executor=address, params=params, chunk_size=1500, cache=True
        )
        with Client(address) as client, first_worker_killed_executing(cluster, "-batch-"):
            warm = run(
                "stop",
                datasets["stop"],
                executor=client,
                params=params,
                chunk_size=1500,
                cache=True,
            )
    finally:
        cluster.stop()
    assert 0 < warm.bytes_read < cold.bytes_read  # the lost batch was read again, elsewhere
    assert warm.complete and warm.events_processed == serial.events_total
    same_output(serial.output, warm.output)


def test_the_column_cache_counts_the_buffers_kept_columns_hold(monkeypatch):
    """The lean reader puts all of a chunk's arrays in one buffer: two columns of it hold the
    whole buffer, and the cache's budget counts that, once, not the columns' own sizes."""
    from analysis_kernels.executor import cache

    chunk = np.zeros(4000, np.uint8)
    kept = (chunk[:400].view(np.float32), chunk[400:800])
    assert cache.retained_bytes(kept) == 4000
    monkeypatch.setenv("FACILITY_CACHE_BYTES", "6000")
    cache.clear()
    try:
        cache.put(("first",), kept)
        cache.put(("second",), (np.zeros(4000, np.uint8)[:10],))
        assert cache.get(("first",)) is None, "over budget by what is held: the oldest goes"
        assert cache.get(("second",)) is not None
    finally:
        cache.clear()


def test_merging_adds_in_place_as_merge_adds(datasets):
    """The executor adds later chunks in place into histograms it made: the same
    sums as ``analyses.merge`` in chunk order (nested dicts, numbers, a key that first
    appears in a later chunk), and every chunk's output left as its analysis returned it."""
    import copy
    import functools

    import hist

    from analysis_kernels.analyses import get_analysis, merge
    from analysis_kernels.executor import _OrderedMerge
    from analysis_kernels.executor.chunks import expand_inputs, plan
    from analysis_kernels.executor.task import process_chunk

    def part(i: int) -> dict:
        h = hist.Hist(hist.axis.Regular(4, 0, 1), storage=hist.storage.Weight())
        h.fill(np.linspace(0, 1, 5 + i), weight=0.1 * (i + 1))
        nested = {"h": h, "n": i, "x": 0.1 * i}
        return {"nested": nested, **({"late": h.copy()} if i else {})}

    chunks, _, _ = plan(expand_inputs(datasets["ds"]), 20_000)
    params = get_analysis("ds").params({})
    for parts in (
        [part(i) for i in range(4)],
        [process_chunk("ds", c, params).output for c in chunks],
    ):
        before = copy.deepcopy(parts)
        merged = _OrderedMerge()
        for i in reversed(range(len(parts))):  # all held back until the first arrives
            merged.add(i, parts[i])
        expected = functools.reduce(merge, copy.deepcopy(parts))
        same_output(merged.output, expected)  # nested: == on histograms, exact
        for kept, now in zip(before, parts, strict=True):
            same_output(now, kept)
