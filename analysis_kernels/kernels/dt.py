"""The DT tag-and-probe searches, one event at a time: the muon cuts with trigger matching,
tag-probe pairs, extrapolation-segment matching and the other-station count.

Float32 throughout, as the columnar code this replaced (thresholds are given as float32; the
pair masses are numpy's to the bin, see :func:`tag_probe_pairs`), so the same pairs and
chambers pass. The selections are applied inside the loops: trigger matching only for muons
that pass the other tag cuts, segment matching only for the extrapolations of probe muons,
and the chambers under study come out as compact columns.
"""

from __future__ import annotations

import numba
import numpy as np

from analysis_kernels.kernels.combinatorics import (
    HUGE,
    MARGIN,
    _distance,
    _mass,
    _system,
    numpy_pz_e,
    pz_e,
)
from analysis_kernels.kernels.delta_r import closer_than, farther_than


@numba.njit(cache=True)
def muon_roles(
    offsets, pt, eta, phi, iso, strips, pixels, tight, fired,
    trig_offsets, trig_eta, trig_phi, trig_id, trig_bits, trig_filter, cuts,
):  # fmt: skip
    """Per muon, whether it is a tag and whether it may be a probe, and how many (tag, probe
    candidate) pairs there are at most.

    A tag passes the track cuts, is tight, above the tag pT, in an event that ``fired``, and
    within ``cone`` of a trigger object of id 13 with a ``trig_filter`` bit; a probe candidate
    passes the track cuts and is above the probe pT. ``cuts``: float32 (max isolation, tag pT,
    probe pT, cone).
    """
    max_iso, tag_pt, probe_pt, cone = cuts
    n = len(pt)
    is_tag = np.zeros(n, dtype=np.bool_)
    probe_ok = np.zeros(n, dtype=np.bool_)
    n_pairs = 0
    for ev in range(len(offsets) - 1):
        tags, candidates = 0, 0
        for i in range(offsets[ev], offsets[ev + 1]):
            if not (strips[i] >= 6 and pixels[i] >= 1 and iso[i] < max_iso):
                continue
            probe_ok[i] = pt[i] > probe_pt
            candidates += probe_ok[i]
            if not (tight[i] and pt[i] > tag_pt and fired[ev]):
                continue
            for k in range(trig_offsets[ev], trig_offsets[ev + 1]):
                if (
                    trig_id[k] == 13
                    and (trig_bits[k] & trig_filter) != 0
                    and closer_than(eta[i], phi[i], trig_eta[k], trig_phi[k], cone)
                ):
                    is_tag[i] = True
                    tags += 1
                    break
        n_pairs += tags * candidates
    return is_tag, probe_ok, n_pairs


@numba.njit(cache=True, inline="always")
def _near_edge(m, bound, lo, width, per_width, bins):
    """Whether ``m`` lies within ``bound`` of an edge of a regular axis (lower edge, bin
    width and its inverse, number of bins)."""
    k = min(max(np.floor((m - lo) * per_width + 0.5), 0.0), bins)
    return abs(m - (lo + k * width)) <= bound


def tag_probe_pairs(
    offsets, px, py, pt, eta, phi, charge, dz, is_tag, probe_ok, n_pairs, cuts, mass_axis,
    margin=MARGIN,
):  # fmt: skip
    """Every (tag, probe) pair of distinct muons, tag-major as ``ak.argcartesian``: whether
    each muon is the probe of some pair, and the masses of the pairs in that order.

    The masses are those of numpy's float32 four-vectors (px and py given, pz and E as
    :func:`analysis_kernels.kinematics.four_vector` computes them) to the bin: each is
    computed from the muons' pz and E of
    :func:`analysis_kernels.kernels.combinatorics.pz_e`, and again from numpy's
    (:func:`analysis_kernels.kernels.combinatorics.numpy_pz_e`) where the margin could move
    it across an edge of the mass window or of ``mass_axis`` (float64: lower edge, bin
    width, number of bins), or may not hold (a NaN, infinite or huge m^2): 1 pair in 15 on
    the benchmark data. ``n_pairs``: at most how many pairs there are (:func:`muon_roles`).
    ``cuts``: float32 (min Delta R, max |Delta z|, Z mass, mass window, muon mass).
    """
    is_probe, masses, unsure = _pairs(
        offsets, px, py, pt, eta, phi, charge, dz, is_tag, probe_ok, n_pairs, cuts, mass_axis,
        margin,
    )  # fmt: skip
    if not len(unsure):
        return is_probe, masses
    slot, tag, probe = unsure.T
    mu_mass = cuts[4]
    pz_t, e_t = numpy_pz_e(pt, eta, mu_mass, tag)
    pz_p, e_p = numpy_pz_e(pt, eta, mu_mass, probe)
    kept = _pairs_again(masses, slot, tag, probe, px, py, pz_t, e_t, pz_p, e_p, cuts, is_probe)
    return is_probe, masses[kept]


@numba.njit(cache=True, error_model="numpy")
def _pairs(
    offsets, px, py, pt, eta, phi, charge, dz, is_tag, probe_ok, n_pairs, cuts, mass_axis,
    margin,
):  # fmt: skip
    """:func:`tag_probe_pairs` with fast pz and E: the pairs that surely pass, and those
    unsure (their row in the masses, tag and probe), whose mass is left to be computed."""
    min_dr, max_dz, z_mass, window, mu_mass = cuts
    axis_lo, width, bins = mass_axis
    per_width = 1 / width
    is_probe = np.zeros(len(eta), dtype=np.bool_)
    masses = np.empty(n_pairs, dtype=np.float32)
    unsure, n_unsure = np.empty((n_pairs, 3), dtype=np.int64), 0
    pz, energy = pz_e(pt, eta, mu_mass)  # of every muon, in one vectorised loop
    filled = 0
    for ev in range(len(offsets) - 1):
        lo, hi = offsets[ev], offsets[ev + 1]
        for t in range(lo, hi):
            if not is_tag[t]:
                continue
            for p in range(lo, hi):
                if p == t or not probe_ok[p] or charge[t] * charge[p] >= 0:
                    continue
                if not farther_than(eta[t], phi[t], eta[p], phi[p], min_dr):
                    continue
                if not abs(dz[t] - dz[p]) < max_dz:
                    continue
                x, y = px[t] + px[p], py[t] + py[p]
                z, e = pz[t] + pz[p], energy[t] + energy[p]
                m, _, margin2 = _system(x, y, z, e, margin)
                distance, bound = _distance(m, margin2, z_mass, margin)
                holds = margin2 < margin * HUGE
                if holds and distance - window > bound:
                    continue  # surely outside the window
                if (
                    not holds
                    or window - distance <= bound
                    or _near_edge(m, bound, axis_lo, width, per_width, bins)
                ):
                    unsure[n_unsure] = filled, t, p
                    n_unsure += 1
                else:
                    is_probe[p] = True
                masses[filled] = m
                filled += 1
    return is_probe, masses[:filled], unsure[:n_unsure]


@numba.njit(cache=True)
def _pairs_again(masses, slot, tag, probe, px, py, pz_t, e_t, pz_p, e_p, cuts, is_probe):
    """The unsure pairs' masses from the pz and E given, in their rows of ``masses``; which
    rows are kept (the pairs in the window), their probes marked."""
    _, _, z_mass, window, _ = cuts
    kept = np.ones(len(masses), dtype=np.bool_)
    for k in range(len(slot)):
        t, p = tag[k], probe[k]
        m = _mass(px[t] + px[p], py[t] + py[p], pz_t[k] + pz_p[k], e_t[k] + e_p[k])
        masses[slot[k]] = m
        if abs(m - z_mass) < window:
            is_probe[p] = True
        else:
            kept[slot[k]] = False
    return kept


@numba.njit(cache=True)
def _events_with(offsets, flags):
    """The events with a flagged object, in order (branch-free). :func:`chamber_probes`
    goes through these alone (4 events in 10 on the benchmark data), where it went through
    every event's extrapolations, looking up each one's muon."""
    events = np.empty(len(offsets) - 1, dtype=np.int64)
    n = 0
    for ev in range(len(offsets) - 1):
        flagged = False
        for k in range(offsets[ev], offsets[ev + 1]):
            flagged |= flags[k]
        events[n] = ev
        n += flagged
    return events[:n]


@numba.njit(cache=True)
def chamber_probes(
    ext_offsets, ext_muon, ext_wheel, ext_sector, ext_station, ext_x, ext_edge_x, ext_edge_y,
    seg_offsets, seg_wheel, seg_sector, seg_station, seg_x,
    mu_offsets, is_probe, mu_pt, mu_eta, window, min_other, margin,
):  # fmt: skip
    """The chambers under study, as compact columns in extrapolation order: extrapolations
    of probe muons with at least ``min_other`` extrapolations of the same muon in other
    stations that passed. An extrapolation passed when a segment of its chamber lies within
    ``window`` in x; it is fiducial when both edge distances exceed ``margin``.

    Returns wheel, sector, station, passed, fiducial, the muon's pT and eta, and the event
    index of each.
    """
    n = len(ext_x)
    state = np.zeros(n, dtype=np.int8)  # 1: an extrapolation of a probe muon, 2: that passed
    wheel = np.empty(n, dtype=ext_wheel.dtype)
    sector = np.empty(n, dtype=ext_sector.dtype)
    station = np.empty(n, dtype=ext_station.dtype)
    out_passed = np.empty(n, dtype=np.bool_)
    fiducial = np.empty(n, dtype=np.bool_)
    pt = np.empty(n, dtype=mu_pt.dtype)
    eta = np.empty(n, dtype=mu_eta.dtype)
    event = np.empty(n, dtype=np.int64)
    count = 0
    for ev in _events_with(mu_offsets, is_probe):
        e0, e1 = ext_offsets[ev], ext_offsets[ev + 1]
        s0, s1 = seg_offsets[ev], seg_offsets[ev + 1]
        m0, n_mu = mu_offsets[ev], mu_offsets[ev + 1] - mu_offsets[ev]
        any_probe = False
        for e in range(e0, e1):
            muon = ext_muon[e]
            if muon < 0 or muon >= n_mu or not is_probe[m0 + muon]:
                continue
            any_probe = True
            w, sc, st, x = ext_wheel[e], ext_sector[e], ext_station[e], ext_x[e]
            state[e] = 1
            for s in range(s0, s1):
                if (
                    st == seg_station[s]
                    and sc == seg_sector[s]
                    and w == seg_wheel[s]
                    and abs(x - seg_x[s]) < window
                ):
                    state[e] = 2
                    break
        if not any_probe:
            continue
        for e in range(e0, e1):
            if state[e] == 0:
                continue
            muon, st = ext_muon[e], ext_station[e]
            others = 0
            for o in range(e0, e1):  # passed, same muon, other station: enough of them?
                if state[o] == 2 and ext_muon[o] == muon and ext_station[o] != st:
                    others += 1
                    if others >= min_other:
                        break
            if others < min_other:
                continue
            wheel[count], sector[count], station[count] = ext_wheel[e], ext_sector[e], st
            out_passed[count] = state[e] == 2
            fiducial[count] = (ext_edge_x[e] > margin) & (ext_edge_y[e] > margin)
            pt[count], eta[count] = mu_pt[m0 + muon], mu_eta[m0 + muon]
            event[count] = ev
            count += 1
    return (
        wheel[:count], sector[:count], station[:count], out_passed[:count],
        fiducial[:count], pt[:count], eta[:count], event[:count],
    )  # fmt: skip
