"""Pair and triplet searches of the ADL queries (Q5-Q8), one event at a time.

Inputs are flat float32 four-vector components (computed once per object with numpy, as
before) and offsets. Sums and products stay in float32 in the order the columnar code used
(``((e*e - px*px) - py*py) - pz*pz`` of ``(a + b) + c``), so the masses are the same numbers
and the histograms the same bins. Two collections (muons, then electrons) are treated as
one list per event, as ``ak.concatenate`` made them.
"""

from __future__ import annotations

import numba
import numpy as np

F32 = np.float32


@numba.njit(cache=True, inline="always")
def _mass(px, py, pz, e):
    m2 = e * e - px * px - py * py - pz * pz
    return np.sqrt(m2) if m2 > 0 else F32(0)


@numba.njit(cache=True)
def offsets_of_events_with(offsets, n):
    """The offsets of the events with at least ``n`` objects, on their own (0 first)."""
    out = np.zeros(len(offsets), dtype=np.int64)
    kept = 0
    for ev in range(len(offsets) - 1):
        count = offsets[ev + 1] - offsets[ev]
        if count >= n:
            out[kept + 1] = out[kept] + count
            kept += 1
    return out[: kept + 1]


@numba.njit(cache=True)
def objects_of_events_with(offsets, n, values):
    """The values of the objects of the events with at least ``n`` objects, in order."""
    out = np.empty(len(values), dtype=values.dtype)
    k = 0
    for ev in range(len(offsets) - 1):
        if offsets[ev + 1] - offsets[ev] >= n:
            for i in range(offsets[ev], offsets[ev + 1]):
                out[k] = values[i]
                k += 1
    return out[:k]


@numba.njit(cache=True)
def at_least_n_above(offsets, values, threshold, n):
    """Per event, whether at least ``n`` of its values are above ``threshold`` (Q4's
    ``ak.sum(values > threshold, axis=1) >= n``)."""
    out = np.zeros(len(offsets) - 1, dtype=np.bool_)
    if n <= 0:
        out[:] = True
        return out
    for ev in range(len(offsets) - 1):
        count = 0
        for i in range(offsets[ev], offsets[ev + 1]):
            if values[i] > threshold:
                count += 1
                if count >= n:
                    out[ev] = True
                    break
    return out


@numba.njit(cache=True)
def opposite_pair_in_window(offsets, px, py, pz, e, charge, low, high):
    """Per event, whether some opposite-charge pair has a mass in (low, high)."""
    n = len(offsets) - 1
    out = np.zeros(n, dtype=np.bool_)
    for ev in range(n):
        for i in range(offsets[ev], offsets[ev + 1]):
            for j in range(i + 1, offsets[ev + 1]):
                if charge[i] == charge[j]:
                    continue
                m = _mass(px[i] + px[j], py[i] + py[j], pz[i] + pz[j], e[i] + e[j])
                if m > low and m < high:
                    out[ev] = True
                    break
            if out[ev]:
                break
    return out


@numba.njit(cache=True)
def trijet_closest_to(offsets, px, py, pz, e, btag, target):
    """For events with >= 3 jets: px, py and the largest b-tag of the trijet whose mass is
    closest to ``target`` (the first such in combination order)."""
    n = len(offsets) - 1
    selected = np.zeros(n, dtype=np.bool_)
    out_px = np.zeros(n, dtype=np.float32)
    out_py = np.zeros(n, dtype=np.float32)
    out_btag = np.zeros(n, dtype=np.float32)
    for ev in range(n):
        lo, hi = offsets[ev], offsets[ev + 1]
        if hi - lo < 3:
            continue
        selected[ev] = True
        best = np.inf
        best_px, best_py, best_btag = F32(0), F32(0), F32(0)
        for i in range(lo, hi):
            for j in range(i + 1, hi):
                # (i + j) + k, the order of the columnar sums, with i + j kept across k
                ijx, ijy, ijz, ije = px[i] + px[j], py[i] + py[j], pz[i] + pz[j], e[i] + e[j]
                for k in range(j + 1, hi):
                    sx, sy = ijx + px[k], ijy + py[k]
                    m = _mass(sx, sy, ijz + pz[k], ije + e[k])
                    distance = abs(m - target)
                    if distance < best:
                        best = distance
                        best_px, best_py = sx, sy
                        best_btag = max(max(btag[i], btag[j]), btag[k])
        out_px[ev], out_py[ev], out_btag[ev] = best_px, best_py, best_btag
    return selected, out_px, out_py, out_btag


@numba.njit(cache=True)
def _near(eta, phi, offsets, pt, l_eta, l_phi, ev, lep_min, cone):
    """Whether a lepton above ``lep_min`` lies within ``cone`` in Delta R of (eta, phi)."""
    pi, two_pi = F32(np.pi), F32(2 * np.pi)
    for m in range(offsets[ev], offsets[ev + 1]):
        if not pt[m] > lep_min:
            continue
        dphi = np.remainder(phi - l_phi[m] + pi, two_pi) - pi
        if np.hypot(eta - l_eta[m], dphi) < cone:
            return True
    return False


@numba.njit(cache=True)
def isolated_jet_sum(jets, jet_min, muons, electrons, lep_min, cone):
    """Per event, the float32 sum of the pT of jets above ``jet_min`` with no muon or
    electron above ``lep_min`` within ``cone`` in Delta R (Delta phi wrapped into [-pi, pi)
    as :func:`analysis_kernels.kinematics.delta_phi`). Each collection is (offsets, pt, eta,
    phi)."""
    offsets, pt, eta, phi = jets
    n = len(offsets) - 1
    out = np.zeros(n, dtype=np.float32)
    for ev in range(n):
        total = F32(0)
        for j in range(offsets[ev], offsets[ev + 1]):
            if not pt[j] > jet_min:
                continue
            if _near(eta[j], phi[j], *muons, ev, lep_min, cone):
                continue
            if _near(eta[j], phi[j], *electrons, ev, lep_min, cone):
                continue
            total += pt[j]
        out[ev] = total
    return out


@numba.njit(cache=True, inline="always")
def _at(k, n_first, first_start, second_start, first, second):
    """Entry ``k`` of an event's list made of the first collection, then the second."""
    return first[first_start + k] if k < n_first else second[second_start + k - n_first]


@numba.njit(cache=True)
def lead_outside_z_pair(
    mu_offsets, mu_vec, mu_charge, mu_pt, el_offsets, el_vec, el_charge, el_pt, z_mass
):
    """Events with >= 3 leptons and a same-flavour opposite-charge pair: the highest-pT lepton
    outside the pair closest to ``z_mass``, as (is it a muon, its flat index); -1 elsewhere.

    ``*_vec`` are (4, n) float32 arrays of px, py, pz, E; leptons are muons then electrons.
    """
    n = len(mu_offsets) - 1
    is_muon = np.zeros(n, dtype=np.bool_)
    index = np.full(n, -1, dtype=np.int64)
    for ev in range(n):
        m0, e0 = mu_offsets[ev], el_offsets[ev]
        nm, total = mu_offsets[ev + 1] - m0, mu_offsets[ev + 1] - m0 + el_offsets[ev + 1] - e0
        if total < 3:
            continue
        best, pair_a, pair_b = np.inf, -1, -1
        for a in range(total):
            for b in range(a + 1, total):
                if (a < nm) != (b < nm):  # different flavours
                    continue
                if _at(a, nm, m0, e0, mu_charge, el_charge) == _at(
                    b, nm, m0, e0, mu_charge, el_charge
                ):
                    continue
                sx = _at(a, nm, m0, e0, mu_vec[0], el_vec[0]) + _at(
                    b, nm, m0, e0, mu_vec[0], el_vec[0]
                )
                sy = _at(a, nm, m0, e0, mu_vec[1], el_vec[1]) + _at(
                    b, nm, m0, e0, mu_vec[1], el_vec[1]
                )
                sz = _at(a, nm, m0, e0, mu_vec[2], el_vec[2]) + _at(
                    b, nm, m0, e0, mu_vec[2], el_vec[2]
                )
                se = _at(a, nm, m0, e0, mu_vec[3], el_vec[3]) + _at(
                    b, nm, m0, e0, mu_vec[3], el_vec[3]
                )
                distance = abs(_mass(sx, sy, sz, se) - z_mass)
                if pair_a < 0 or distance < best:
                    best, pair_a, pair_b = distance, a, b
        if pair_a < 0:
            continue
        lead, lead_pt = -1, F32(0)
        for k in range(total):
            if k in (pair_a, pair_b):
                continue
            pt = _at(k, nm, m0, e0, mu_pt, el_pt)
            if lead < 0 or pt > lead_pt:
                lead, lead_pt = k, pt
        is_muon[ev] = lead < nm
        index[ev] = m0 + lead if lead < nm else e0 + lead - nm
    return is_muon, index
