"""The columnar (awkward and numpy) code the compiled kernels replaced, kept as their reference.

The kernels must give the same histograms as this code, bin for bin; the tests run both on
the same generated chunks.
"""

from __future__ import annotations

import awkward as ak
import hist
import numpy as np

from analysis_kernels.analyses.base import ChunkResult, Output
from analysis_kernels.analyses.ds_phipi import FLAVOURS, MASS_AXIS, MASS_WINDOW
from analysis_kernels.columns import padded


def ds_match(candidate_pt: ak.Array, collection_pt: ak.Array) -> tuple[ak.Array, ak.Array]:
    """Index of each candidate's object in a collection, found by exact pT, and whether found.

    Compares each candidate with its event's objects in a padded (candidates x objects) table.
    """
    counts = ak.num(candidate_pt)
    width = max(1, int(ak.max(ak.num(collection_pt), initial=0)))
    table = padded(collection_pt, width, np.nan)
    event = np.repeat(np.arange(len(counts)), ak.to_numpy(counts))
    same = table[event] == ak.to_numpy(ak.flatten(candidate_pt))[:, None]
    return ak.unflatten(np.argmax(same, axis=1), counts), ak.unflatten(same.any(axis=1), counts)


def ds_select(
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
    i1, f1 = ds_match(events.Mu01_Pt, events.Muon_pt)
    i2, f2 = ds_match(events.Mu02_Pt, events.Muon_pt)
    it, ft = ds_match(events.Tr_Pt, events.Track_pt)
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


def ds_process(
    events: ak.Array, mc_truth: bool = False, fd_significance_min: float = 2.0
) -> ChunkResult:
    _, best, has_best, cutflow = ds_select(events, fd_significance_min)
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
