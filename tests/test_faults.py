"""Faults: a worker killed mid-run, and corrupt or truncated input with exact accounting."""

from __future__ import annotations

import numpy as np
import pytest
import uproot
from distributed import Client

from analysis_kernels import get_analysis, run
from analysis_kernels.analyses import merge
from analysis_kernels.errors import InputError
from analysis_kernels.executor.processes import DaskProcesses
from analysis_kernels.generate import DatasetSpec, generate_dataset
from analysis_kernels.schema import read_chunk
from tests.worker_kill import first_worker_killed_executing


@pytest.mark.slow
def test_worker_killed_mid_run_changes_nothing(datasets):
    """SIGKILL one of two worker processes while chunks run: Dask reruns its chunks."""
    params = {"n_variations": 150}
    serial = run("stop", datasets["stop"], params=params, chunk_size=1500)
    cluster = DaskProcesses(n_workers=2)
    try:
        with first_worker_killed_executing(cluster, "-chunk-"):
            report = run(
                "stop",
                datasets["stop"],
                executor=cluster.scheduler_address,
                params=params,
                chunk_size=1500,
            )
        with Client(cluster.scheduler_address) as client:
            assert len(client.scheduler_info()["workers"]) == 1
    finally:
        cluster.stop()
    assert report.complete and report.events_processed == serial.events_total
    for key, value in serial.output.items():
        if hasattr(value, "view"):
            assert np.array_equal(value.view(flow=True), report.output[key].view(flow=True)), key


def _corrupt_second_basket(path, branch="Muon_pt"):
    """Overwrite the middle of the second basket of ``branch`` with garbage."""
    b = uproot.open(path)["Events"][branch]
    seek = int(b.member("fBasketSeek")[1])
    size = int(b.member("fBasketBytes")[1])
    start, stop = b.basket_entry_start_stop(1)
    with open(path, "r+b") as f:
        f.seek(seek + size // 2)
        f.write(b"\xde\xad\xbe\xef" * 64)
    return start, stop


@pytest.fixture
def damaged_dataset(tmp_path):
    """Four files: one with a corrupt basket, one truncated, one intact, one not ROOT at all."""
    # ZLIB streams carry a checksum, so a damaged payload is detected (ROOT writes ZSTD
    # baskets without one).
    generate_dataset(
        DatasetSpec("dt", files=3, events_per_file=120_000, codec="ZLIB", level=1, seed=11),
        tmp_path,
        progress=False,
    )
    start, stop = _corrupt_second_basket(tmp_path / "dt_0000.root")
    truncated = tmp_path / "dt_0001.root"
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    (tmp_path / "dt_0003.root").write_bytes(b"<html>403 Forbidden</html>")
    return tmp_path, (start, stop)


def test_corrupt_basket_error_names_file_and_entry_range(damaged_dataset):
    directory, (start, _) = damaged_dataset
    with pytest.raises(
        InputError,
        match=rf"dt_0000.root entries \[{start}, {start + 50_000}\): cannot read or decompress",
    ):
        run("dt", directory / "dt_0000.root", chunk_size=50_000)


def test_truncated_and_foreign_files_are_named(damaged_dataset):
    directory, _ = damaged_dataset
    with pytest.raises(
        InputError, match=r"dt_0001.root entries \[\d+, \d+\): cannot read or decompress"
    ):
        run("dt", directory / "dt_0001.root")
    with pytest.raises(InputError, match=r"dt_0003.root: not a readable ROOT file"):
        run("dt", directory / "dt_0003.root")


@pytest.mark.parametrize("executor", ["serial", pytest.param("local:2", marks=pytest.mark.slow)])
def test_skip_bad_reports_exactly_what_was_not_processed(damaged_dataset, executor):
    directory, (start, _) = damaged_dataset
    report = run("dt", directory, executor=executor, chunk_size=50_000, skip_bad=True)
    assert not report.complete
    assert [f["file"].rsplit("/", 1)[1] for f in report.unreadable_files] == ["dt_0003.root"]
    by_file = {}
    for f in report.failed_chunks:
        by_file.setdefault(f["file"].rsplit("/", 1)[1], []).append(
            (f["entry_start"], f["entry_stop"])
        )
    assert by_file["dt_0000.root"] == [(start, start + 50_000)]
    assert by_file["dt_0001.root"]  # the truncated half
    assert "dt_0002.root" not in by_file
    # Accounting: processed + failed = total events of the files that could be opened.
    assert report.events_total == 360_000
    assert report.events_processed + report.events_failed == report.events_total
    assert report.events_processed == report.summary["cutflow"]["events"]
    per_file = report.events_per_file
    for name, ranges in by_file.items():
        entry = next(v for k, v in per_file.items() if k.endswith(name))
        assert entry["processed"] == entry["total"] - sum(b - a for a, b in ranges)


def test_skipping_a_bad_chunk_equals_never_having_it(damaged_dataset, tmp_path):
    """The result of a skip-bad run is exactly the analysis of the good entry ranges."""
    directory, (start, _) = damaged_dataset
    clean = tmp_path / "clean"
    generate_dataset(
        DatasetSpec("dt", files=1, events_per_file=120_000, codec="ZLIB", level=1, seed=11),
        clean,
        progress=False,
    )
    skipped = run("dt", directory / "dt_0000.root", chunk_size=50_000, skip_bad=True)
    analysis = get_analysis("dt")
    expected = {}
    for first in (c for c in (0, 50_000, 100_000) if c != start):
        events, _ = read_chunk(
            str(clean / "dt_0000.root"), analysis.branches, first, min(first + 50_000, 120_000)
        )
        output, _ = analysis.process(events)
        expected = merge(expected, output) if expected else output
    assert skipped.events_processed == expected["cutflow"]["events"] == 70_000
    for key in ("chamber", "pt", "eta", "mass"):
        assert np.array_equal(skipped.output[key].view(flow=True), expected[key].view(flow=True)), (
            key
        )
