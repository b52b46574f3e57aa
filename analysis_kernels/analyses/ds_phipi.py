"""CMS Ds+ -> phi(mu mu) pi+ normalisation channel, as in the seed's RDataFrame notebook.

Selections, in the seed's order: candidate mass in (1.62, 2.02) GeV, more than one track
from the refitted PV, flight-distance significance above 2; the candidate's muons and track
found in ``Muon_``/``Track_`` by their pT, muons global and PF, track |dz| < 20 cm and
|dxy| < 0.3 cm; the best passing candidate by vertex chi2; its mass in 62 bins from 1.70 to
2.05 GeV, fitted for the D+ and Ds peaks over a falling background.
"""

from __future__ import annotations

from collections.abc import Mapping

import awkward as ak
import hist
import numpy as np

from analysis_kernels.analyses.base import Analysis, ChunkResult, Output
from analysis_kernels.columns import padded
from analysis_kernels.fit import fit_ds_dplus

F32, I32, B = "var * float32", "var * int32", "var * bool"
BRANCHES = {
    "run": "uint32",
    "event": "uint64",
    "Triplet2_Mass": F32,
    "TripletVtx2_Chi2": F32,
    "RefittedPV2_NTracks": I32,
    "FlightDistBS_SV_Significance": F32,
    "Mu01_Pt": F32,
    "Mu02_Pt": F32,
    "Tr_Pt": F32,
    "Muon_pt": F32,
    "Muon_isGlobal": B,
    "Muon_isPF": B,
    "Track_pt": F32,
    "Track_dz": F32,
    "Track_dxy": F32,
}
TRUTH_BRANCHES = {"Triplet2_genFlav": I32}
MASS_WINDOW = (1.62, 2.02)  # GeV, the seed's candidate mass selection
MASS_AXIS = hist.axis.Regular(62, 1.70, 2.05, name="mass", label=r"$m(\mu\mu\pi)$ [GeV]")
FLAVOURS = {0: "combinatorial", 411: "Dplus", 431: "Ds"}


def match(candidate_pt: ak.Array, collection_pt: ak.Array) -> tuple[ak.Array, ak.Array]:
    """Index of each candidate's object in a collection, found by exact pT, and whether found.

    Compares each candidate with its event's objects in a padded (candidates x objects) table.
    """
    counts = ak.num(candidate_pt)
    width = max(1, int(ak.max(ak.num(collection_pt), initial=0)))
    table = padded(collection_pt, width, np.nan)
    event = np.repeat(np.arange(len(counts)), ak.to_numpy(counts))
    same = table[event] == ak.to_numpy(ak.flatten(candidate_pt))[:, None]
    return ak.unflatten(np.argmax(same, axis=1), counts), ak.unflatten(same.any(axis=1), counts)


def select(
    events: ak.Array, fd_significance_min: float = 2.0
) -> tuple[ak.Array, ak.Array, ak.Array, dict]:
    """Per-candidate pass flags, the best candidate's index per event, and the cut flow."""
    kinematic = (
        (events.Triplet2_Mass > MASS_WINDOW[0])
        & (events.Triplet2_Mass < MASS_WINDOW[1])
        & (events.RefittedPV2_NTracks > 1)
        & (events.FlightDistBS_SV_Significance > fd_significance_min)
    )
    good_muon = events.Muon_isGlobal & events.Muon_isPF
    good_track = (abs(events.Track_dz) < 20) & (abs(events.Track_dxy) < 0.3)
    i1, f1 = match(events.Mu01_Pt, events.Muon_pt)
    i2, f2 = match(events.Mu02_Pt, events.Muon_pt)
    it, ft = match(events.Tr_Pt, events.Track_pt)
    quality = f1 & f2 & ft & good_muon[i1] & good_muon[i2] & good_track[it]
    passed = kinematic & quality
    chi2 = ak.where(passed, events.TripletVtx2_Chi2, np.inf)
    best = ak.argmin(chi2, axis=1, keepdims=True)
    has_best = ak.any(passed, axis=1)
    cutflow = {
        "events": len(events),
        "kinematic": int(ak.sum(ak.any(kinematic, axis=1))),
        "muon_id_track_ip": int(ak.sum(has_best)),
    }
    return passed, best, has_best, cutflow


def process(
    events: ak.Array, mc_truth: bool = False, fd_significance_min: float = 2.0
) -> ChunkResult:
    _, best, has_best, cutflow = select(events, fd_significance_min)
    chosen = events[has_best]
    best = best[has_best]
    mass = ak.drop_none(ak.flatten(chosen.Triplet2_Mass[best]))
    out: Output = {"mass": hist.Hist(MASS_AXIS).fill(mass), "cutflow": cutflow}
    if mc_truth:
        flav = ak.drop_none(ak.flatten(chosen.Triplet2_genFlav[best]))
        out["mass_by_truth"] = hist.Hist(
            MASS_AXIS, hist.axis.IntCategory(list(FLAVOURS), name="flavour")
        ).fill(mass, flav)
    snapshot = ak.zip({"run": chosen.run, "event": chosen.event, "BestTriplet_mass": mass})
    return out, snapshot


def summarize(output: Output, params: Mapping) -> dict:
    fit = fit_ds_dplus(output["mass"], upper=MASS_WINDOW[1])
    summary = {
        "cutflow": output["cutflow"],
        "candidates": int(output["mass"].sum(flow=True)),
        "fit": fit,
    }
    if "mass_by_truth" in output:
        h = output["mass_by_truth"]
        summary["truth_matched"] = {
            name: float(h[:, hist.loc(code)].sum()) for code, name in FLAVOURS.items()
        }
    return summary


def headline(summary: dict) -> list[str]:
    fit = summary["fit"]
    return [
        f"best candidates: {summary['candidates']} (cut flow {summary['cutflow']})",
        f"N(Ds) = {fit['n_ds']['value']:.0f} ± {fit['n_ds']['error']:.0f}, "
        f"N(D+) = {fit['n_dplus']['value']:.0f} ± {fit['n_dplus']['error']:.0f}, "
        f"m(Ds) = {1000 * fit['m_ds']['value']:.1f} MeV, fit {'converged' if fit['valid'] else 'FAILED'}",
    ]


ANALYSIS = Analysis(
    name="ds",
    title="CMS Ds -> phi(mu mu) pi normalisation channel",
    branches=BRANCHES,
    truth_branches=TRUTH_BRANCHES,
    process=process,
    summarize=summarize,
    figures="ds_plots",
    headline=headline,
    defaults={"mc_truth": False, "fd_significance_min": 2.0},
)
