"""The Ds -> phi(mu mu) pi analysis: selection logic and closure of the fit on generated data."""

from __future__ import annotations

import awkward as ak
import numpy as np

from analysis_kernels import run
from analysis_kernels.analyses.ds_phipi import match, select
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


def test_match_finds_objects_by_exact_pt():
    idx, found = match(ak.Array([[7.5, 1.0]]), ak.Array([[5.5, 6.5, 7.5]]))
    assert idx.tolist() == [[2, 0]]
    assert found.tolist() == [[True, False]]


def test_best_candidate_is_the_lowest_chi2_that_passes():
    passed, best, has_best, _ = select(_event())
    assert (
        passed.tolist() == [[True, True]] and best.tolist() == [[1]] and has_best.tolist() == [True]
    )
    # The muon of candidate 1 is not PF: candidate 0 becomes the best.
    passed, best, _, _ = select(_event(Muon_isPF=[True, True, False]))
    assert passed.tolist() == [[True, False]] and best.tolist() == [[0]]
    # Track of candidate 0 fails |dxy| < 0.3 cm, candidate 1 fails the PV track count.
    passed, _, has_best, cutflow = select(_event(Track_dxy=[-0.5, 0.0], RefittedPV2_NTracks=[5, 1]))
    assert passed.tolist() == [[False, False]] and has_best.tolist() == [False]
    assert cutflow == {"events": 1, "kinematic": 1, "muon_id_track_ip": 0}
    # Outside the 1.62-2.02 GeV window.
    passed, *_ = select(_event(Triplet2_Mass=[2.03, 1.60]))
    assert passed.tolist() == [[False, False]]


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
