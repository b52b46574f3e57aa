"""The Ds -> phi(mu mu) pi candidate selection in one pass: cuts, matching by pT, best chi2."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _first_equal(values, start, stop, target):
    """Index of the first of ``values[start:stop]`` equal to ``target``, or -1."""
    for j in range(start, stop):
        if values[j] == target:
            return j
    return -1


@numba.njit(cache=True)
def best_candidates(
    cand_offsets,
    mass,
    pv_tracks,
    fd_significance,
    chi2,
    mu1_pt,
    mu2_pt,
    track_pt_of_candidate,
    muon_offsets,
    muon_pt,
    muon_good,
    track_offsets,
    track_pt,
    track_good,
    mass_low,
    mass_high,
    fd_min,
):
    """Per candidate whether it passes; per event the best passing candidate (flat index,
    -1 if none) by lowest vertex chi2 (the first on ties) and whether any candidate passed
    the kinematic cuts.

    A candidate's muons and track are the first objects of its event with exactly its pT.
    """
    n = len(cand_offsets) - 1
    passed = np.zeros(len(mass), dtype=np.bool_)
    best = np.full(n, -1, dtype=np.int64)
    kinematic = np.zeros(n, dtype=np.bool_)
    for e in range(n):
        m0, m1 = muon_offsets[e], muon_offsets[e + 1]
        t0, t1 = track_offsets[e], track_offsets[e + 1]
        lowest = np.inf
        for c in range(cand_offsets[e], cand_offsets[e + 1]):
            if not (
                mass[c] > mass_low
                and mass[c] < mass_high
                and pv_tracks[c] > 1
                and fd_significance[c] > fd_min
            ):
                continue
            kinematic[e] = True
            i1 = _first_equal(muon_pt, m0, m1, mu1_pt[c])
            i2 = _first_equal(muon_pt, m0, m1, mu2_pt[c])
            it = _first_equal(track_pt, t0, t1, track_pt_of_candidate[c])
            if i1 < 0 or i2 < 0 or it < 0:
                continue
            if not (muon_good[i1] and muon_good[i2] and track_good[it]):
                continue
            passed[c] = True
            if best[e] < 0 or chi2[c] < lowest:
                best[e], lowest = c, chi2[c]
    return passed, best, kinematic
