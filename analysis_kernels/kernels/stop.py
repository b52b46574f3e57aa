"""The stop analysis' jet and weight variations in one pass over the preselected events.

For each event, every variation of the pass: the jet-energy-scale shifts and resolution
smearings (new jet pT, missing momentum, jet counts, leading jets, four-body regions) and
the weight-only variations (pile-up, QCD scale, lepton and b-tagging scale factors, on the
nominal regions). Yields are summed per (variation, region, flavour) in event order, as
``np.bincount`` did. MT2 (an external library) is left to the caller: events that can pass
its cut are returned as candidates.

The arithmetic follows the numpy code it replaced, operation by operation (missing-momentum
sums in numpy's pairwise order, smearing from the same hash); two things may differ in the
last bit: the sum of the four leading jets (numpy summed them in ``np.partition``'s order)
and, on CPUs where numpy uses its own SIMD logarithm and cosine, the smearing numbers. The
tests bound the yields of every variation to 1e-12 of the numpy code.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# Variation kinds handled here (systematics.Variation.kind), by code.
KINDS = {"pu": 0, "scale": 1, "lepsf": 2, "btag": 3, "jes": 4, "jer": 5}
WEIGHT_ONLY = 3  # codes up to this one only change the weight
JET_PT, JET_ETA, BJET_ETA, BTAG_CUT = 20.0, 2.8, 2.5, 0.3
Z_MASS, MT2_CUT = 91.1876, 110.0


@numba.njit(cache=True, inline="always")
def _splitmix(x):
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@numba.njit(cache=True, inline="always")
def _hash_normal(event, jet, key):
    """:func:`analysis_kernels.kinematics.hash_normal` of three keys, for one value."""
    state = _splitmix(np.uint64(0) ^ event)
    state = _splitmix(state ^ jet)
    state = _splitmix(state ^ key)
    u1 = (float(_splitmix(state) >> np.uint64(11)) + 0.5) / 2.0**53
    u2 = (float(_splitmix(state + np.uint64(1)) >> np.uint64(11)) + 0.5) / 2.0**53
    return np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)


@numba.njit(cache=True)
def _pairwise_sum(values, n):
    """numpy's sum of a row: sequential below 8 values, else 8 interleaved partial sums."""
    if n < 8:
        total = 0.0
        for i in range(n):
            total += values[i]
        return total
    a0, a1, a2, a3 = values[0], values[1], values[2], values[3]
    a4, a5, a6, a7 = values[4], values[5], values[6], values[7]
    i = 8
    while i < n - n % 8:
        a0, a1, a2, a3 = a0 + values[i], a1 + values[i + 1], a2 + values[i + 2], a3 + values[i + 3]
        a4, a5, a6, a7 = (
            a4 + values[i + 4],
            a5 + values[i + 5],
            a6 + values[i + 6],
            a7 + values[i + 7],
        )
        i += 8
    total = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
    while i < n:
        total += values[i]
        i += 1
    return total


@numba.njit(cache=True)
def _weight(kind, sign, index, e, lep_pt, jet_pt, gen, pu, pu_up, pu_down, lhe, jet_tagged):
    """Event weight under one variation (stop_2l.weight, one event)."""
    p = pu[e]
    if kind == 0:
        p = pu_up[e] if sign == 1 else pu_down[e]
    s = sign if kind == 2 else 0
    sf0 = 0.98 + s * 0.01 * (1 + 5.0 / lep_pt[0])
    sf1 = 0.98 + s * 0.01 * (1 + 5.0 / lep_pt[1])
    w = gen[e] * p * (sf0 * sf1)
    if kind == 1:
        w = w * lhe[e, index]
    btag_sf = 0.95 + (0.03 * sign if kind == 3 else 0.0)
    factor = 1.0
    for j in range(len(jet_pt)):
        factor *= btag_sf if jet_tagged[e, j] and jet_pt[j] > JET_PT else 1.0
    return w * factor


@numba.njit(cache=True)
def variations_pass(
    kind, sign, index, amplitude, power, width,
    l_pt, l_cos, l_sin, l_is_mu, j_pt, j_eta, j_cos, j_sin, j_valid, j_central, j_btag,
    event, gen, pu, pu_up, pu_down, lhe, met_x0, met_y0,
    nominal_regions, nominal_mll, presel, flavour,
):  # fmt: skip
    """Yields (variations x 3 regions x 3 flavours: sums of weights and of squares), and the
    MT2 candidates of the jet variations as (variation, event, weight, met_x, met_y).

    Regions are SR4b-soft, SR4b-hard, SR-mt2; the SR-mt2 yields of jet variations are left
    at zero for the caller, who computes MT2 for the candidates.
    """
    n_var, n_ev, n_jet = len(kind), l_pt.shape[0], j_pt.shape[1]
    value = np.zeros((n_var, 3, 3))
    variance = np.zeros((n_var, 3, 3))
    cand_var = np.empty(max(n_ev, 16), np.int64)
    cand_ev = np.empty(max(n_ev, 16), np.int64)
    cand = np.empty((max(n_ev, 16), 3))
    n_cand = 0
    tagged = j_valid & j_btag  # j_btag: b-tag score and |eta| cuts
    shifted = np.empty(n_jet)
    products = np.empty(n_jet)
    top = np.empty(4)
    eta_power = np.empty((n_jet, 4))  # (|eta| / 2.8) ** p of the event's jets, p = 1, 2, 3
    for e in range(n_ev):
        if not presel[e]:  # every region requires the preselection
            continue
        f = flavour[e]
        pt0, pt1 = l_pt[e, 0], l_pt[e, 1]
        same_flavour = l_is_mu[e, 0] == l_is_mu[e, 1]
        off_z = not same_flavour or abs(nominal_mll[e] - Z_MASS) > 20
        any_b = False
        for j in range(n_jet):
            t = abs(j_eta[e, j]) / JET_ETA
            eta_power[j, 1], eta_power[j, 2], eta_power[j, 3] = t, t * t, math.pow(t, 3.0)
            any_b = any_b or (j_central[e, j] and j_btag[e, j])
        # Jet variations move an event into a region only if it can reach one: a soft
        # leading lepton (four-body) or a central b-tagged jet off the Z peak (SR-mt2).
        jets_matter = pt0 < 25 or (off_z and any_b)
        for v in range(n_var):
            k = kind[v]
            if k <= WEIGHT_ONLY:
                w = _weight(
                    k, sign[v], index[v], e, l_pt[e], j_pt[e], gen, pu, pu_up, pu_down, lhe, tagged
                )
                for r in range(3):
                    if nominal_regions[e, r]:
                        value[v, r, f] += w
                        variance[v, r, f] += w * w
                continue
            if not jets_matter:
                continue
            p = int(power[v])
            n_b, lead, ht4 = 0, 0.0, 0.0
            top[:] = 0.0
            for j in range(n_jet):
                if not j_valid[e, j]:  # padding: no effect on any sum, count or weight
                    shifted[j] = j_pt[e, j]
                elif k == 4:
                    shift = amplitude[v] * (1.0 + eta_power[j, p])
                    shifted[j] = j_pt[e, j] * (1 + sign[v] * shift)
                else:
                    smear = _hash_normal(event[e], np.uint64(j), np.uint64(1000 + index[v]))
                    shifted[j] = j_pt[e, j] * max(1 + width[v] * smear, 0.0)
                x = shifted[j] if j_central[e, j] and shifted[j] > JET_PT else 0.0
                n_b += x > 0 and j_btag[e, j]
                lead = max(lead, x)
                ht4 += x  # with at most four jets, numpy's sum in jet order
                for q in range(4):  # the four leading jets, largest first
                    if x > top[q]:
                        x, top[q] = top[q], x
            maybe_four_body = pt0 < 25 and lead > 150
            maybe_mt2 = n_b >= 1 and off_z
            if not (maybe_four_body or maybe_mt2):
                continue
            if n_jet > 4:
                ht4 = ((top[0] + top[1]) + top[2]) + top[3]
            for j in range(n_jet):
                products[j] = (shifted[j] - j_pt[e, j]) * j_valid[e, j] * j_cos[e, j]
            met_x = met_x0[e] - _pairwise_sum(products, n_jet) - 0.0
            for j in range(n_jet):
                products[j] = (shifted[j] - j_pt[e, j]) * j_valid[e, j] * j_sin[e, j]
            met_y = met_y0[e] - _pairwise_sum(products, n_jet) - 0.0
            met = np.hypot(met_x, met_y)
            four_body = (
                maybe_four_body
                and met > 250
                and met / (pt0 + pt1) > 12
                and met / (met + (pt0 + pt1) + ht4) > 0.44
            )
            candidate = False
            if maybe_mt2:
                bound = np.inf
                for i in range(2):
                    mt = 2 * (
                        l_pt[e, i] * met - l_pt[e, i] * (l_cos[e, i] * met_x + l_sin[e, i] * met_y)
                    )
                    bound = min(bound, np.sqrt(max(mt, 0.0)))
                candidate = bound > MT2_CUT
            if not (four_body or candidate):
                continue
            w = _weight(
                k, sign[v], index[v], e, l_pt[e], shifted, gen, pu, pu_up, pu_down, lhe, tagged
            )
            if four_body:
                r = 0 if pt1 < 10 else 1
                value[v, r, f] += w
                variance[v, r, f] += w * w
            if candidate:
                if n_cand == len(cand_ev):
                    cand_var = np.concatenate((cand_var, np.empty_like(cand_var)))
                    cand_ev = np.concatenate((cand_ev, np.empty_like(cand_ev)))
                    cand = np.concatenate((cand, np.empty_like(cand)))
                cand_var[n_cand], cand_ev[n_cand] = v, e
                cand[n_cand, 0], cand[n_cand, 1], cand[n_cand, 2] = w, met_x, met_y
                n_cand += 1
    return value, variance, cand_var[:n_cand], cand_ev[:n_cand], cand[:n_cand]
