"""The DT tag-and-probe searches, one event at a time: trigger matching, tag-probe pairs,
extrapolation-segment matching and the other-station count.

Float32 throughout, as the columnar code this replaced (thresholds are given as float32,
four-vector components are computed per muon with numpy), so the same pairs and chambers
pass.
"""

from __future__ import annotations

import numba
import numpy as np

from analysis_kernels.kernels.combinatorics import F32, _mass


@numba.njit(cache=True, inline="always")
def _delta_r(eta1, phi1, eta2, phi2):
    pi, two_pi = F32(np.pi), F32(2 * np.pi)
    return np.hypot(eta1 - eta2, np.remainder(phi1 - phi2 + pi, two_pi) - pi)


@numba.njit(cache=True)
def trigger_matched(mu_offsets, mu_eta, mu_phi, trig_offsets, trig_eta, trig_phi, trig_ok, cone):
    """Per muon, whether an accepted trigger object lies within ``cone`` in Delta R."""
    out = np.zeros(len(mu_eta), dtype=np.bool_)
    for ev in range(len(mu_offsets) - 1):
        for i in range(mu_offsets[ev], mu_offsets[ev + 1]):
            for k in range(trig_offsets[ev], trig_offsets[ev + 1]):
                if trig_ok[k] and _delta_r(mu_eta[i], mu_phi[i], trig_eta[k], trig_phi[k]) < cone:
                    out[i] = True
                    break
    return out


@numba.njit(cache=True)
def tag_probe_pairs(offsets, p4, eta, phi, charge, dz, is_tag, probe_ok, cuts):
    """Every (tag, probe) pair of distinct muons, tag-major as ``ak.argcartesian``: whether
    each muon is the probe of some pair, and the masses of the pairs in that order.

    ``cuts``: float32 (min Delta R, max |Delta z|, Z mass, mass window).
    """
    min_dr, max_dz, z_mass, window = cuts
    is_probe = np.zeros(len(eta), dtype=np.bool_)
    masses = np.empty(max(1, int(np.sum(np.diff(offsets) ** 2))), dtype=np.float32)
    filled = 0
    for ev in range(len(offsets) - 1):
        for t in range(offsets[ev], offsets[ev + 1]):
            if not is_tag[t]:
                continue
            for p in range(offsets[ev], offsets[ev + 1]):
                if p == t or not probe_ok[p] or charge[t] * charge[p] >= 0:
                    continue
                if not _delta_r(eta[t], phi[t], eta[p], phi[p]) > min_dr:
                    continue
                if not abs(dz[t] - dz[p]) < max_dz:
                    continue
                m = _mass(
                    p4[0, t] + p4[0, p],
                    p4[1, t] + p4[1, p],
                    p4[2, t] + p4[2, p],
                    p4[3, t] + p4[3, p],
                )
                if not abs(m - z_mass) < window:
                    continue
                is_probe[p] = True
                masses[filled] = m
                filled += 1
    return is_probe, masses[:filled]


@numba.njit(cache=True)
def chamber_probes(
    ext_offsets, ext_muon, ext_wheel, ext_sector, ext_station, ext_x,
    seg_offsets, seg_wheel, seg_sector, seg_station, seg_x,
    mu_offsets, is_probe, window, min_other,
):  # fmt: skip
    """Per extrapolation: whether a segment of its chamber lies within ``window`` in x
    (passed), and whether it is under study (its muon is a probe and at least ``min_other``
    other stations of that muon passed)."""
    passed = np.zeros(len(ext_x), dtype=np.bool_)
    studied = np.zeros(len(ext_x), dtype=np.bool_)
    for ev in range(len(ext_offsets) - 1):
        e0, e1 = ext_offsets[ev], ext_offsets[ev + 1]
        for e in range(e0, e1):
            for s in range(seg_offsets[ev], seg_offsets[ev + 1]):
                if (
                    ext_wheel[e] == seg_wheel[s]
                    and ext_sector[e] == seg_sector[s]
                    and ext_station[e] == seg_station[s]
                    and abs(ext_x[e] - seg_x[s]) < window
                ):
                    passed[e] = True
                    break
        n_mu = mu_offsets[ev + 1] - mu_offsets[ev]
        for e in range(e0, e1):
            muon = ext_muon[e]
            if muon < 0 or muon >= n_mu or not is_probe[mu_offsets[ev] + muon]:
                continue
            others = 0
            for o in range(e0, e1):
                if ext_muon[o] == muon and ext_station[o] != ext_station[e] and passed[o]:
                    others += 1
            studied[e] = others >= min_other
    return passed, studied
