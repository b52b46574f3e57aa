"""The Ds -> phi(mu mu) pi analysis: selection logic and closure of the fit on generated data."""

from __future__ import annotations

import awkward as ak
import numpy as np

from analysis_kernels import run
from analysis_kernels.analyses.ds_phipi import select
from analysis_kernels.generate import load_truth


def _event(**overrides):
    """One event with two candidates; candidate 1 has the better vertex chi2."""
    event = {
        "Triplet2_Mass": [1.97, 1.87],
        "TripletVtx2_Chi2": [3.0, 1.0],
        "RefittedPV2_NTracks": [5, 5],
        "FlightDistBS_SV_Significance": [6.0, 6.0],
        "Mu01_Pt": [5.5, 7.5],
        "Mu02_Pt": [6.5, 6.5],
        "Tr_Pt": [2.5, 3.5],
        "Muon_pt": [5.5, 6.5, 7.5],
        "Muon_isGlobal": [True, True, True],
        "Muon_isPF": [True, True, True],
        "Track_pt": [2.5, 3.5],
        "Track_dz": [0.1, 0.2],
        "Track_dxy": [0.01, 0.02],
    }
    event.update(overrides)
    return ak.Array(
        {
            k: [np.asarray(v, dtype=np.float32 if isinstance(v[0], float) else None)]
            for k, v in event.items()
        }
    )


def _passed_and_best(event):
    """Pass flags of the candidates and the best one's index (None if none passed)."""
    passed, best, _, cutflow = select(event)
    return passed.tolist(), (int(best[0]) if best[0] >= 0 else None), cutflow


def test_candidates_find_their_objects_by_exact_pt():
    # Candidate 0's first muon has a pT found in no muon of the event: it fails.
    passed, best, _ = _passed_and_best(_event(Mu01_Pt=[5.25, 7.5]))
    assert passed == [False, True] and best == 1
    # The pT of candidate 1's track matches the second track, which fails |dz| < 20 cm.
    passed, best, _ = _passed_and_best(_event(Track_dz=[0.1, 25.0]))
    assert passed == [True, False] and best == 0


def test_best_candidate_is_the_lowest_chi2_that_passes():
    passed, best, cutflow = _passed_and_best(_event())
    assert passed == [True, True] and best == 1
    assert cutflow == {"events": 1, "kinematic": 1, "muon_id_track_ip": 1}
    # The muon of candidate 1 is not PF: candidate 0 becomes the best.
    passed, best, _ = _passed_and_best(_event(Muon_isPF=[True, True, False]))
    assert passed == [True, False] and best == 0
    # Track of candidate 0 fails |dxy| < 0.3 cm, candidate 1 fails the PV track count.
    passed, best, cutflow = _passed_and_best(
        _event(Track_dxy=[-0.5, 0.0], RefittedPV2_NTracks=[5, 1])
    )
    assert passed == [False, False] and best is None
    assert cutflow == {"events": 1, "kinematic": 1, "muon_id_track_ip": 0}
    # Outside the 1.62-2.02 GeV window; the lower edge itself (float32 1.62) is outside.
    passed, _, cutflow = _passed_and_best(_event(Triplet2_Mass=[2.03, 1.62]))
    assert passed == [False, False] and cutflow["kinematic"] == 0
    # Equal chi2: the first passing candidate.
    _, best, _ = _passed_and_best(_event(TripletVtx2_Chi2=[2.0, 2.0]))
    assert best == 0


def test_fit_recovers_the_generated_yields(datasets):
    """The D+ and Ds yields of the fit agree with the truth-matched counts within 3 sigma."""
    report = run("ds", datasets["ds"], params={"mc_truth": True})
    fit, truth = report.summary["fit"], report.summary["truth_matched"]
    assert fit["valid"]
    for key, name in (("n_ds", "Ds"), ("n_dplus", "Dplus")):
        pull = (fit[key]["value"] - truth[name]) / fit[key]["error"]
        assert abs(pull) < 3, (key, fit[key], truth[name])
    assert abs(fit["m_ds"]["value"] - 1.96835) < 3 * fit["m_ds"]["error"] + 1e-4
    # Selected signal is a known fraction of the generated signal: the cuts keep most of it.
    generated = load_truth(datasets["ds"])["totals"]
    assert 0.7 < truth["Ds"] / generated["generated_Ds"] <= 1.0
    assert (
        sum(report.output["mass"].values(flow=True))
        == report.summary["cutflow"]["muon_id_track_ip"]
    )
