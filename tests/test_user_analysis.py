"""A physicist's own analysis through the executor: functions, processors, coffea; real files.

The analyses below live in this test module, which the Dask worker processes cannot import:
they reach the workers by value.
"""

from __future__ import annotations

import textwrap
import threading
import time

import awkward as ak
import hist
import numpy as np
import pytest
import uproot
from distributed import Client

from analysis_kernels import run
from analysis_kernels.cli import main
from analysis_kernels.errors import InputError
from analysis_kernels.executor import AnalysisCodeError, HarvestSpec, gather
from analysis_kernels.executor.processes import DaskProcesses
from tests.outputs import same_output

MUONS = ["nMuon", "Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass"]


def pair_mass(pt, eta, phi, mass):
    """Invariant mass of the first two entries of each (jagged) list, in float64."""
    pt, eta, phi, mass = (ak.values_astype(x[:, :2], np.float64) for x in (pt, eta, phi, mass))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    s = ak.sum(e, axis=1) ** 2 - sum(ak.sum(p, axis=1) ** 2 for p in (px, py, pz))
    return ak.to_numpy(np.sqrt(np.maximum(s, 0)))


def dimuon(events):
    """Mass of the two leading muons: a function of the events."""
    two = events[events.nMuon >= 2]
    m = pair_mass(two.Muon_pt, two.Muon_eta, two.Muon_phi, two.Muon_mass)
    h = hist.Hist.new.Reg(40, 0, 200, name="mass", label="m(μμ) [GeV]").Double().fill(m)
    return {"mass": h, "pairs": len(m)}


def by_hand(path, tree="Events"):
    """The same with uproot, the whole file at once."""
    a = uproot.open(path)[tree].arrays(MUONS)
    a = a[a.nMuon >= 2]
    return pair_mass(a.Muon_pt, a.Muon_eta, a.Muon_phi, a.Muon_mass)


class LeadingMuon:
    """An object with process and postprocess, taking a parameter."""

    def process(self, events, pt_min=0.0):
        pt = events.Muon_pt[events.nMuon > 0][:, 0]
        pt = pt[pt > pt_min]
        h = hist.Hist.new.Reg(50, 0, 250, name="pt").Int64().fill(pt)
        return {"pt": h, "n": len(pt), "sum_pt": float(ak.sum(pt))}

    def postprocess(self, output):
        return {"mean_pt": output["sum_pt"] / output["n"]}


def ds_best_mass(events, fd_min=2.0):
    """A Ds-like selection on the generated flat ntuples, returning its events to harvest."""
    good = (events.Triplet2_Mass > 1.62) & (events.FlightDistBS_SV_Significance > fd_min)
    mass = events.Triplet2_Mass[good]
    best = ak.firsts(mass[ak.argmin(events.TripletVtx2_Chi2[good], axis=1, keepdims=True)])
    keep = ~ak.is_none(best)
    selected = ak.zip({"event": events.event[keep], "mass": ak.fill_none(best[keep], 0.0)})
    h = hist.Hist.new.Reg(62, 1.70, 2.05, name="mass").Weight().fill(selected.mass)
    return {"mass": h, "cutflow": {"events": len(events), "selected": len(selected)}}, selected


def test_dimuon_mass_on_real_nanoaod_equals_uproot_by_hand(real_nanoaod):
    report = run(dimuon, real_nanoaod, chunk_size=64)
    expected = by_hand(real_nanoaod)
    h = report.output["mass"]
    assert report.output["pairs"] == len(expected) > 0
    assert np.array_equal(h.values(flow=True), h.copy().reset().fill(expected).values(flow=True))
    assert report.analysis == "dimuon" and report.complete and report.chunks == 4
    assert report.events_processed == report.events_total == 200
    # Read lazily: exactly the branches the code touched, out of the file's 947.
    assert report.columns_read == sorted(MUONS)
    declared = run(dimuon, real_nanoaod, chunk_size=64, columns=MUONS)
    same_output(declared.output, report.output)
    assert declared.bytes_read == report.bytes_read > 0


def test_processor_object_with_parameters_and_postprocess(real_nanoaod):
    report = run(LeadingMuon(), real_nanoaod, params={"pt_min": 20.0}, chunk_size=50)
    pt = uproot.open(real_nanoaod)["Events"]["Muon_pt"].array()
    lead = ak.to_numpy(ak.firsts(pt[ak.num(pt) > 0]))
    assert report.output["n"] == np.count_nonzero(lead > 20)
    assert report.summary["mean_pt"] == pytest.approx(lead[lead > 20].mean(), rel=1e-6)
    assert report.columns_read == ["Muon_pt", "nMuon"]


def test_unchanged_coffea_processor_on_nanoevents(real_nanoaod):
    processor = pytest.importorskip("coffea.processor")

    class MuonPt(processor.ProcessorABC):
        def process(self, events):
            muons = events.Muon[events.Muon.pt > 10]
            h = hist.Hist.new.Reg(50, 0, 250, name="pt").Double().fill(ak.flatten(muons.pt))
            return {"pt": h, "muons": int(ak.sum(ak.num(muons)))}

        def postprocess(self, accumulator):
            return accumulator

    report = run(MuonPt(), real_nanoaod, schema="nanoaod", chunk_size=64)
    pt = uproot.open(real_nanoaod)["Events"]["Muon_pt"].array()
    pt = ak.to_numpy(ak.flatten(pt[pt > 10]))
    assert report.output["muons"] == len(pt)
    assert report.output["pt"] == report.output["pt"].copy().reset().fill(pt)
    assert report.summary["muons"] == len(pt)
    assert "Muon_pt" in report.columns_read and len(report.columns_read) < 10


@pytest.fixture(scope="module")
def rntuples(real_nanoaod, tmp_path_factory):
    """The real file's muons as RNTuple, written by uproot and by ROOT itself."""
    out = tmp_path_factory.mktemp("rntuple")
    arrays = uproot.open(real_nanoaod)["Events"].arrays(MUONS)
    with uproot.recreate(out / "uproot.root") as f:
        f.mkrntuple("Muons", arrays)
    ROOT = pytest.importorskip("ROOT")
    options = ROOT.RDF.RSnapshotOptions()
    options.fOutputFormat = ROOT.RDF.ESnapshotOutputFormat.kRNTuple
    ROOT.RDataFrame("Events", str(real_nanoaod)).Snapshot(
        "Muons", str(out / "root.root"), MUONS, options
    )
    return {"uproot": out / "uproot.root", "ROOT": out / "root.root"}


@pytest.mark.parametrize("writer", ["uproot", "ROOT"])
def test_rntuple_inputs_are_found_and_read_like_ttrees(real_nanoaod, rntuples, writer):
    assert uproot.open(rntuples[writer]).classnames() == {"Muons;1": "ROOT::RNTuple"}
    ttree = run(dimuon, real_nanoaod, chunk_size=64)
    rntuple = run(dimuon, rntuples[writer], tree="Muons", chunk_size=64)
    same_output(rntuple.output, ttree.output)
    assert (rntuple.chunks, rntuple.events_processed, rntuple.events_total) == (4, 200, 200)
    assert rntuple.columns_read == sorted(MUONS)


def test_declared_column_missing_from_a_file_is_named(real_nanoaod):
    with pytest.raises(InputError, match=r"nanoAOD_.*\.root: missing column\(s\) Muon_ptt"):
        run(dimuon, real_nanoaod, columns=["nMuon", "Muon_ptt"])


def broken(events):
    return {"n": len(events.Muon_pt) / 0}


@pytest.mark.parametrize("executor", ["serial", pytest.param("processes", marks=pytest.mark.slow)])
def test_user_exception_comes_back_with_traceback_and_chunk(real_nanoaod, request, executor):
    """A bug is never bad input: skip_bad does not skip it."""
    if executor == "processes":
        executor = request.getfixturevalue("dask_processes").scheduler_address
    with pytest.raises(AnalysisCodeError) as raised:
        run(broken, real_nanoaod, executor=executor, chunk_size=64, skip_bad=True)
    message = str(raised.value)
    assert "analysis 'broken' raised ZeroDivisionError" in message
    assert "entries [" in message and raised.value.file == str(real_nanoaod)
    assert "test_user_analysis.py" in message and "/ 0" in message  # the user's own frame


def test_unknown_analysis_says_how_to_name_your_own(real_nanoaod):
    with pytest.raises(ValueError, match=r"unknown analysis 'dimuon'.*file\.py:NAME"):
        run("dimuon", real_nanoaod)
    with pytest.raises(TypeError, match="got int"):
        run(42, real_nanoaod)


@pytest.mark.slow
def test_identical_serial_local_and_separate_processes(datasets, dask_processes, tmp_path):
    """Including a module the workers lack, loaded from a file like the CLI does."""
    module = tmp_path / "my_selection.py"
    module.write_text(
        "import hist\n\n"
        "def jet_count(events):\n"
        "    return {'n': hist.Hist.new.Integer(0, 10, name='n').Int64().fill(events.nTriplet)}\n"
    )
    processes = dask_processes.scheduler_address
    for analysis, executors in (
        (ds_best_mass, ("serial", "local:2", processes)),
        (f"{module}:jet_count", ("serial", processes)),  # workers that lack the module
    ):
        reports = [
            run(analysis, datasets["ds"], executor=ex, chunk_size=20_000) for ex in executors
        ]
        for other in reports[1:]:
            same_output(reports[0].output, other.output)
            assert other.columns_read == reports[0].columns_read
            assert other.events_processed == other.events_total == 120_000
            assert other.bytes_read == reports[0].bytes_read


def test_harvest_of_a_user_analysis_and_progress_bar(datasets, tmp_path, capsys):
    spec = HarvestSpec(f"file://{tmp_path / 'pieces'}", "root")
    report = run(ds_best_mass, datasets["ds"], chunk_size=30_000, harvest=spec, progress=True)
    assert "ds_best_mass: 100%" in capsys.readouterr().err
    assert len(report.harvest_manifest) == report.chunks == 4
    gathered = uproot.open(gather(report.harvest_manifest, tmp_path / "all.root"))["Snapshot"]
    assert gathered.num_entries == report.output["cutflow"]["selected"]
    h = report.output["mass"].copy().reset()
    assert h.fill(gathered["mass"].array()) == report.output["mass"]


@pytest.mark.slow
def test_cache_rerun_with_a_new_cut_reads_nothing_from_storage(datasets):
    from distributed import LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        cold = run(ds_best_mass, datasets["ds"], executor=client, chunk_size=20_000, cache=True)
        warm = run(
            ds_best_mass,
            datasets["ds"],
            executor=client,
            chunk_size=20_000,
            cache=True,
            params={"fd_min": 4.0},
        )
    assert cold.bytes_read > 0 and warm.bytes_read < cold.bytes_read / 3
    assert warm.columns_read == cold.columns_read
    reference = run(ds_best_mass, datasets["ds"], chunk_size=20_000, params={"fd_min": 4.0})
    same_output(warm.output, reference.output)


def slow_count(events, pause=0.0):
    time.sleep(pause)  # long enough chunks for a worker to die among them
    return {"events": len(events), "triplets": int(ak.sum(events.nTriplet))}


@pytest.mark.slow
def test_worker_killed_mid_run_changes_nothing(datasets):
    serial = run(slow_count, datasets["ds"], chunk_size=5_000)
    cluster = DaskProcesses(n_workers=2)
    victim, killed = cluster.workers[0], threading.Event()

    def kill_when_busy():
        with Client(cluster.scheduler_address) as watcher:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not killed.is_set():
                processing = watcher.processing()
                if len(processing) == 2 and all(processing.values()):
                    victim.kill()
                    killed.set()
                time.sleep(0.05)

    try:
        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        report = run(
            slow_count,
            datasets["ds"],
            executor=cluster.scheduler_address,
            chunk_size=5_000,
            params={"pause": 0.3},
        )
        killer.join()
    finally:
        cluster.stop()
    assert killed.is_set() and report.complete
    assert report.output == serial.output and report.events_processed == 120_000


def test_skip_bad_accounts_for_a_user_analysis(datasets, tmp_path):
    good = sorted(datasets["ds"].glob("*.root"))[0]
    damaged = tmp_path / "damaged.root"
    damaged.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    report = run(ds_best_mass, [good, damaged], chunk_size=20_000, skip_bad=True)
    assert report.failed_chunks and all(f["file"] == str(damaged) for f in report.failed_chunks)
    assert report.events_processed + report.events_failed == report.events_total == 120_000
    assert report.output["cutflow"]["events"] == report.events_processed


def test_cli_runs_a_file_and_a_module(real_nanoaod, tmp_path, monkeypatch, capsys):
    code = textwrap.dedent(
        """
        import hist

        def leading_pt(events):
            pt = events.Muon_pt[events.nMuon > 0][:, 0]
            return {"pt": hist.Hist.new.Reg(10, 0, 200, name="pt").Double().fill(pt)}
        """
    )
    (tmp_path / "cli_analysis.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    for reference in (f"{tmp_path}/cli_analysis.py:leading_pt", "cli_analysis:leading_pt"):
        assert (
            main(["analyze", reference, str(real_nanoaod), "--tree", "Events", "--no-progress"])
            == 0
        )
        out = capsys.readouterr().out
        assert "columns read: Muon_pt, nMuon" in out and "200 processed of 200" in out
    assert main(["analyze", "cli_analysis:nothing", str(real_nanoaod)]) == 2
    assert "defines no 'nothing'" in capsys.readouterr().err


def test_builtin_analysis_reads_an_rntuple_like_its_ttree(datasets, tmp_path):
    from analysis_kernels.analyses import get_analysis

    ttree = sorted(datasets["ds"].glob("*.root"))[0]
    arrays = uproot.open(ttree)["Events"].arrays(list(get_analysis("ds").branches))
    with uproot.recreate(tmp_path / "ds_rntuple.root") as f:
        f.mkrntuple("Events", arrays)
    expected = run("ds", ttree, chunk_size=25_000)
    report = run("ds", tmp_path / "ds_rntuple.root", chunk_size=25_000)
    same_output(report.output, expected.output)
    assert report.chunks == expected.chunks == 3 and report.complete
