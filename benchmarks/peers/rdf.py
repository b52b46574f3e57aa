"""The seed analyses and the ADL queries in ROOT RDataFrame, written as the seed notebooks do.

C++ helpers are declared from the headers beside this file; the event selection is
``Define``/``Filter``; histograms are ``Histo1D``. Each function returns plain numpy arrays
of bin contents (flow bins included) so they compare directly with the ``hist`` output of
``analysis_kernels``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


@functools.cache
def root():
    """Import ROOT once and declare the helpers (ROOT comes from the ``root`` extra)."""
    import ROOT

    ROOT.gROOT.SetBatch(True)
    import mt2  # the mt2 package ships Lester's bisection header in site-packages/_mt2

    ROOT.gInterpreter.AddIncludePath(str(Path(mt2.__file__).parents[1] / "_mt2"))
    for header in ("ds.h", "dt.h", "stop.h", "adl.h"):
        if not ROOT.gInterpreter.Declare(f'#include "{HERE / header}"'):
            raise RuntimeError(f"ROOT could not compile {HERE / header}")
    return ROOT


def dataframe(files: list[str], threads: int = 0):
    ROOT = root()
    if threads:
        ROOT.EnableImplicitMT(threads)
    else:
        ROOT.DisableImplicitMT()
    return ROOT.RDataFrame("Events", [str(f) for f in files])


def values(h) -> np.ndarray:
    """Bin contents of a TH1 with under- and overflow, as hist's ``values(flow=True)``."""
    h = h.GetValue() if hasattr(h, "GetValue") else h
    return np.array([h.GetBinContent(i) for i in range(h.GetNbinsX() + 2)])


def ds(files: list[str], threads: int = 0) -> dict:
    """Ds -> phi(mu mu) pi: the seed notebook's selection, best candidate, mass histogram."""
    df = (
        dataframe(files, threads)
        .Define(
            "triplet_mask1",
            "Triplet2_Mass > 1.62 && Triplet2_Mass < 2.02 && RefittedPV2_NTracks > 1 && FlightDistBS_SV_Significance > 2",
        )
        .Filter("ROOT::VecOps::Sum(triplet_mask1) > 0")
        .Define("Mu01_index", "facility_ds::match(Muon_pt, Mu01_Pt)")
        .Define("Mu02_index", "facility_ds::match(Muon_pt, Mu02_Pt)")
        .Define("Tr_index", "facility_ds::match(Track_pt, Tr_Pt)")
        .Define("Mu01_ID", "facility_ds::muon_id(Mu01_index, Muon_isGlobal && Muon_isPF)")
        .Define("Mu02_ID", "facility_ds::muon_id(Mu02_index, Muon_isGlobal && Muon_isPF)")
        .Define(
            "Tr_IPcut", "facility_ds::muon_id(Tr_index, abs(Track_dz) < 20 && abs(Track_dxy) < 0.3)"
        )
        .Define("triplet_mask4", "triplet_mask1 && Mu01_ID && Mu02_ID && Tr_IPcut")
        .Filter("ROOT::VecOps::Sum(triplet_mask4) > 0")
        .Define("BestTriplet_index", "facility_ds::bestcandidate(TripletVtx2_Chi2, triplet_mask4)")
        .Define("BestTriplet_mass", "Triplet2_Mass[BestTriplet_index]")
    )
    return {"mass": values(df.Histo1D(("h_mass", "h_mass", 62, 1.70, 2.05), "BestTriplet_mass"))}


DT_INPUTS = (
    "HLT_IsoMu27, Muon_pt, Muon_eta, Muon_phi, Muon_tkRelIso, Muon_dz, Muon_charge, Muon_tightId, "
    "Muon_nValidStripHits, Muon_nValidPixelHits, TrigObj_eta, TrigObj_phi, TrigObj_id, TrigObj_filterBits, "
    "MuonExtrap_muonIdx, MuonExtrap_wheel, MuonExtrap_sector, MuonExtrap_station, MuonExtrap_x, "
    "MuonExtrap_edgeX, MuonExtrap_edgeY, DTSegment_wheel, DTSegment_sector, DTSegment_station, DTSegment_x"
)


def dt(files: list[str], threads: int = 0) -> dict:
    """DT tag-and-probe: probes per chamber (240 bins), versus pT and eta; all and fiducial."""
    df = dataframe(files, threads).Define("P", f"facility_dt::probes({DT_INPUTS})")
    df = df.Define("tp_mass", "P.mass")
    booked = {"mass": df.Histo1D(("mass", "", 40, 91.1876 - 10, 91.1876 + 10), "tp_mass")}
    binning = {"chamber": (240, -0.5, 239.5), "pt": None, "eta": (24, -1.2, 1.2)}
    pt_bins = np.array([20, 25, 30, 35, 40, 45, 50, 60, 80, 120, 200], dtype=float)
    for selection, fid in (("all", "false"), ("fiducial", "true")):
        for state, passed in (("total", "false"), ("passed", "true")):
            for var in binning:
                column = f"{var}_{selection}_{state}"
                df = df.Define(
                    column, f"facility_dt::pick(P.{var}, P.fiducial, P.passed, {fid}, {passed})"
                )
                model = (
                    (column, "", len(pt_bins) - 1, pt_bins)
                    if var == "pt"
                    else (column, "", *binning[var])
                )
                booked[column] = df.Histo1D(model, column)
    return {name: values(h) for name, h in booked.items()}


STOP_INPUTS = (
    "event, genWeight, puWeight, puWeightUp, puWeightDown, LHEScaleWeight, MET_pt, MET_phi, "
    "Electron_pt, Electron_eta, Electron_phi, Electron_mass, Electron_charge, Electron_cutBased, "
    "Electron_pfRelIso03_all, Muon_pt, Muon_eta, Muon_phi, Muon_mass, Muon_charge, Muon_tightId, "
    "Muon_pfRelIso04_all, Jet_pt, Jet_eta, Jet_phi, Jet_btagDeepFlavB"
)
KINDS = ["nominal", "jes", "jer", "ees", "mes", "pu", "scale", "lepsf", "btag"]


def _book_variation(df, i: int, variation):
    """The yields histogram of one variation (codes region * 3 + flavour), booked on ``df``."""
    args = f"{KINDS.index(variation.kind)}, {variation.sign}, {variation.index}, {STOP_INPUTS}"
    node = df.Define(f"r{i}", f"facility_stop::evaluate({args})")
    node = node.Define(f"codes{i}", f"r{i}.codes").Define(f"weights{i}", f"r{i}.weights")
    return node.Histo1D((f"y{i}", "", 9, -0.5, 8.5), f"codes{i}", f"weights{i}")


def _yields(h) -> np.ndarray:
    return values(h)[1:-1].reshape(3, 3)


def stop(files: list[str], n_variations: int, threads: int = 0) -> dict:
    """Stop two-lepton yields per variation, region and flavour: all variations booked on one
    dataframe and filled in one event loop."""
    from analysis_kernels.analyses.systematics import variations

    df = dataframe(files, threads)
    booked = {v.name: _book_variation(df, i, v) for i, v in enumerate(variations(n_variations))}
    return {name: _yields(h) for name, h in booked.items()}


ADL = {
    "q1": lambda df: {"met": df.Histo1D(("met", "", 100, 0, 200), "MET_pt")},
    "q2": lambda df: {"jet_pt": df.Histo1D(("pt", "", 100, 15, 60), "Jet_pt")},
    "q3": lambda df: {
        "jet_pt": df.Define("central", "Jet_pt[abs(Jet_eta) < 1]").Histo1D(
            ("pt", "", 100, 15, 60), "central"
        )
    },
    "q4": lambda df: {
        "met": df.Filter("Sum(Jet_pt > 40) >= 2").Histo1D(("met", "", 100, 0, 200), "MET_pt")
    },
    "q5": lambda df: {
        "met": df.Filter(
            "facility_adl::has_os_pair_in_window(Muon_pt, Muon_eta, Muon_phi, Muon_mass, Muon_charge)"
        ).Histo1D(("met", "", 100, 0, 200), "MET_pt")
    },
    "q6": lambda df: (
        lambda t: {
            "trijet_pt": t.Histo1D(("pt", "", 100, 0, 250), "tpt"),
            "trijet_btag": t.Histo1D(("b", "", 100, 0, 1), "tb"),
        }
    )(
        df.Filter("nJet >= 3")
        .Define("T", "facility_adl::trijet(Jet_pt, Jet_eta, Jet_phi, Jet_mass, Jet_btag)")
        .Define("tpt", "T[0]")
        .Define("tb", "T[1]")
    ),
    "q7": lambda df: {
        "ht": df.Define(
            "ht",
            "facility_adl::isolated_jet_ht(Jet_pt, Jet_eta, Jet_phi, Muon_pt, Muon_eta, "
            "Muon_phi, Electron_pt, Electron_eta, Electron_phi)",
        ).Histo1D(("ht", "", 100, 15, 200), "ht")
    },
    "q8": lambda df: {
        "mt": df.Define(
            "mt",
            "facility_adl::z_lepton_mt(Muon_pt, Muon_eta, Muon_phi, Muon_mass, Muon_charge, "
            "Electron_pt, Electron_eta, Electron_phi, Electron_mass, Electron_charge, "
            "MET_pt, MET_phi)",
        )
        .Filter("mt >= 0")
        .Histo1D(("mt", "", 100, 15, 250), "mt")
    },
}


def adl(query: str, files: list[str], threads: int = 0) -> dict:
    """One ADL benchmark query (q1 ... q8)."""
    booked = ADL[query](dataframe(files, threads))
    return {name: values(h) for name, h in booked.items()}


def stop_variation(files: list[str], variation, threads: int = 0) -> np.ndarray:
    """One event loop for one variation: the legacy way, a full pass per systematic."""
    return _yields(_book_variation(dataframe(files, threads), 0, variation))
