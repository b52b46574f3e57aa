"""CMS Ds+ -> phi(mu mu) pi+ normalisation channel, as in the seed's RDataFrame notebook.

Selections, in the seed's order: candidate mass in (1.62, 2.02) GeV, more than one track
from the refitted PV, flight-distance significance above 2; the candidate's muons and track
found in ``Muon_``/``Track_`` by their pT, muons global and PF, track |dz| < 20 cm and
|dxy| < 0.3 cm; the best passing candidate by vertex chi2 (all in one compiled pass,
:mod:`analysis_kernels.kernels.ds`); its mass in 62 bins from 1.70 to
2.05 GeV, fitted for the D+ and Ds peaks over a falling background.
"""

from __future__ import annotations

from collections.abc import Mapping

import awkward as ak
import hist
import numpy as np

from analysis_kernels.analyses.base import Analysis, ChunkResult, Output
from analysis_kernels.columns import jagged
from analysis_kernels.fit import fit_ds_dplus
from analysis_kernels.kernels.ds import best_candidates

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
# Per-candidate inputs of the kernel, in its argument order after the mass.
CANDIDATE_BRANCHES = [
    "RefittedPV2_NTracks",
    "FlightDistBS_SV_Significance",
    "TripletVtx2_Chi2",
    "Mu01_Pt",
    "Mu02_Pt",
    "Tr_Pt",
]
MASS_WINDOW = (1.62, 2.02)  # GeV, the seed's candidate mass selection
MASS_AXIS = hist.axis.Regular(62, 1.70, 2.05, name="mass", label=r"$m(\mu\mu\pi)$ [GeV]")
FLAVOURS = {0: "combinatorial", 411: "Dplus", 431: "Ds"}


def select(
    events: ak.Array, fd_significance_min: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Per-candidate pass flags (flat), the best passing candidate of each event (flat index,
    -1 if none), the candidates' offsets, and the cut flow.

    Thresholds are float32, as the stored values: the comparisons are those of the columnar
    code this replaced (numpy compares a float32 array with a Python float in float32).
    """
    offsets, mass = jagged(events.Triplet2_Mass)
    candidate = {b: jagged(events[b])[1] for b in CANDIDATE_BRANCHES}
    muon_offsets, muon_pt = jagged(events.Muon_pt)
    muon_good = jagged(events.Muon_isGlobal)[1] & jagged(events.Muon_isPF)[1]
    track_offsets, track_pt = jagged(events.Track_pt)
    track_good = (np.abs(jagged(events.Track_dz)[1]) < np.float32(20)) & (
        np.abs(jagged(events.Track_dxy)[1]) < np.float32(0.3)
    )
    passed, best, kinematic = best_candidates(
        offsets,
        mass,
        *candidate.values(),
        muon_offsets,
        muon_pt,
        muon_good,
        track_offsets,
        track_pt,
        track_good,
        *np.asarray([*MASS_WINDOW, fd_significance_min], dtype=np.float32),
    )
    cutflow = {
        "events": len(events),
        "kinematic": int(kinematic.sum()),
        "muon_id_track_ip": int((best >= 0).sum()),
    }
    return passed, best, offsets, cutflow


def process(
    events: ak.Array, mc_truth: bool = False, fd_significance_min: float = 2.0
) -> ChunkResult:
    _, best, _, cutflow = select(events, fd_significance_min)
    has_best = best >= 0
    chosen = best[has_best]
    mass = jagged(events.Triplet2_Mass)[1][chosen]
    out: Output = {"mass": hist.Hist(MASS_AXIS).fill(mass), "cutflow": cutflow}
    if mc_truth:
        flav = jagged(events.Triplet2_genFlav)[1][chosen]
        out["mass_by_truth"] = hist.Hist(
            MASS_AXIS, hist.axis.IntCategory(list(FLAVOURS), name="flavour")
        ).fill(mass, flav)
    snapshot = ak.zip(
        {
            "run": ak.to_numpy(events.run)[has_best],
            "event": ak.to_numpy(events.event)[has_best],
            "BestTriplet_mass": mass,
        }
    )
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
