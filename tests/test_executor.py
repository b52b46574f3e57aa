"""One executor: identical histograms from every backend, and the accounting of events."""

from __future__ import annotations

import sys

import pytest

from analysis_kernels import run
from analysis_kernels.generate import load_truth
from tests.outputs import same_output

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
