"""Every systematic variation of the stop analysis but the nominal, in one pass over the events.

For each event, every variation of the pass: the lepton energy scales (new lepton pT and
order, missing momentum, mll, preselection, all regions), the jet-energy-scale shifts and
resolution smearings (new jet pT, missing momentum, jet counts, leading jets, four-body
regions) and the weight-only variations (pile-up, QCD scale, lepton and b-tagging scale
factors, on the nominal regions). Yields are summed per (variation, region, flavour) in
event order, as ``np.bincount`` did. MT2 (an external library) is left to the caller:
events that can pass its cut are returned as candidates, in event order.

The arithmetic follows the numpy code it replaced, operation by operation (missing-momentum
sums in numpy's pairwise order over the padded jets, the lepton four-vectors and mll as
:func:`analysis_kernels.kinematics.invariant_mass` from the same cosines and hyperbolic
functions, smearing from the same hash); two things may differ in the last bit: the sum of
the four leading jets (numpy summed them in ``np.partition``'s order) and, on CPUs where
numpy uses its own SIMD logarithm and cosine, the smearing numbers. The tests bound the
yields of every variation to 1e-12 of the numpy code (equal bit for bit on the test machine).

What is cheap is hoisted out of the variations: per event, the jets' |eta| powers, the
b-tag weight of any number of tagged jets, and the two hash rounds of a smearing that do
not depend on the variation. What is costly is skipped only where it provably changes
nothing: a jet variation is evaluated for an event only if bounds on how far it can move
the jets (its largest relative pT shift, for a smearing the Box-Muller radius read off the
first uniform number before any logarithm) leave a four-body or MT2 region reachable; the
bounds carry a relative margin of 1e-9, far above the rounding of what they bound. And the
MT2 of a jet variation's candidate is not computed where the nominal's decides the cut:
moving the missing momentum by d moves MT2^2 by at most 4 E_T d (E_T the larger lepton
transverse energy); there the margin is 1e-6 of MT2^2, far above the precision of the
library's bisection. The tests compare the yields with the numpy loop that computed all.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# Variation kinds handled here (systematics.Variation.kind), by code.
KINDS = {"pu": 0, "scale": 1, "lepsf": 2, "btag": 3, "jes": 4, "jer": 5, "ees": 6, "mes": 7}
WEIGHT_ONLY = 3  # codes up to this one only change the weight
JES, JER, EES, MES = 4, 5, 6, 7
JET_PT, JET_ETA, BJET_ETA, BTAG_CUT = 20.0, 2.8, 2.5, 0.3
Z_MASS, MT2_CUT = 91.1876, 110.0
# |hash_normal| <= sqrt(-2 log u1) <= RADIUS[i] when u1 >= exp(-RADIUS[i]**2 / 2); the
# smallest u1 the hash gives is 2**-54, so the last radius bounds every smearing.
RADIUS = np.array([1.5, 2.0, 2.5, 3.0, 4.0, math.sqrt(-2 * math.log(2.0**-54)) + 1e-6])
RADIUS_U1 = np.exp(-(RADIUS[:-1] ** 2) / 2)
SLACK = 1e-9  # relative margin of every bound
MT2_SLACK = 1e-6  # relative margin on MT2^2, far above the library's bisection precision


@numba.njit(cache=True, inline="always")
def _splitmix(x):
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@numba.njit(cache=True, inline="always")
def _uniform(state):
    """The uniform number in (0, 1) of :func:`analysis_kernels.kinematics.hash_normal`."""
    return (float(_splitmix(state) >> np.uint64(11)) + 0.5) / 2.0**53


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


@numba.njit(cache=True, inline="always")
def _weight(kind, sign, lep0, lep1, gen, pu, pu_up, pu_down, lhe, btag_factor):
    """Event weight under one variation (stop_2l.weight, one event), given ``1 + 5 / pT`` of
    each lepton, the event's generator, pileup (nominal, up, down) and LHE weight (the
    variation's; unused for other kinds) and the product of the b-tagging scale factors of its
    tagged jets. Scalars, not the arrays: a helper given arrays counts each up and down,
    atomically, at every call (per event and variation here)."""
    p = pu
    if kind == 0:
        p = pu_up if sign == 1 else pu_down
    s = sign if kind == 2 else 0
    sf0 = 0.98 + s * 0.01 * lep0
    sf1 = 0.98 + s * 0.01 * lep1
    w = gen * p * (sf0 * sf1)
    if kind == 1:
        w = w * lhe
    return w * btag_factor


@numba.njit(cache=True)
def _reachable(
    d, lead_max, b_jet_max, pt0, pt1, off_z, met0, mt0_0, mt0_1, mt2_sq, et_max
):  # fmt: skip
    """Whether jets whose pT moves by at most ``d`` in all (the sum over jets of the largest
    |shift|) can put the event in a four-body region or make it an MT2 candidate.

    ``lead_max``, ``b_jet_max``: the largest shifted pT of a central jet and of a central
    b-tagged jet. The missing momentum moves by at most ``d``, each mT^2 = 2 pT (|m| - l.m)
    by at most 4 pT d, MT2^2 (``mt2_sq``: the nominal's) by at most 4 E_T d, E_T the larger
    of the leptons' transverse energies (shift the invisible momentum paired with it).
    """
    d = d * (1 + SLACK) + SLACK
    met = (met0 + d) * (1 + SLACK)
    four_body = pt0 < 25 and lead_max > 150 and met > 250 and met > 12 * (pt0 + pt1)
    if four_body:
        return True
    if not (off_z and b_jet_max > JET_PT):
        return False
    tol = SLACK * (met + 1.0)
    mt_0 = mt0_0 + 4 * pt0 * d + tol * pt0
    mt_1 = mt0_1 + 4 * pt1 * d + tol * pt1
    if min(mt_0, mt_1) <= MT2_CUT * MT2_CUT:
        return False
    reach = 4 * et_max * d * (1 + MT2_SLACK) + MT2_SLACK * (mt2_sq + MT2_CUT * MT2_CUT)
    return not (mt2_sq + reach < MT2_CUT * MT2_CUT)  # a NaN decides nothing


@numba.njit(cache=True)
def variations_pass(
    kind, sign, index, amplitude, power, width,
    l_pt, l_cos, l_sin, l_sinh, l_cosh, l_mass, l_is_mu,
    j_pt, j_eta, j_cos, j_sin, j_valid, j_central, j_btag,
    event, gen, pu, pu_up, pu_down, lhe, met_x0, met_y0,
    nominal_regions, nominal_mll, presel, flavour, nominal_weight,
    nominal_ht4, nominal_lead, nominal_n_b, nominal_mt2,
):  # fmt: skip
    """Yields (variations x 3 regions x 3 flavours: sums of weights and of squares), and the
    MT2 candidates as (variation, event, known, values) in event order; ``values`` holds the
    weight, the missing momentum (x, y), the two lepton pTs in falling order and whether that
    order swapped them (lepton energy scales); ``known`` marks events whose MT2 is the
    nominal's, known to pass (lepton scales that move no lepton of the event).

    Regions are SR4b-soft, SR4b-hard, SR-mt2; the SR-mt2 yields are left at zero for the
    caller, who computes MT2 for the candidates. ``l_sinh``, ``l_cosh``: of each lepton's
    eta, as numpy computes them; ``nominal_*``: the nominal's variables and regions.
    """
    n_var, n_ev, n_jet = len(kind), l_pt.shape[0], j_pt.shape[1]
    value = np.zeros((n_var, 3, 3))
    variance = np.zeros((n_var, 3, 3))
    size = max(n_ev, 16)
    cand_var = np.empty(size, np.int64)
    cand_ev = np.empty(size, np.int64)
    cand_known = np.empty(size, np.bool_)
    cand = np.empty((size, 6))
    n_cand = 0

    lepton_vars = np.flatnonzero(kind >= EES)
    weight_vars = np.flatnonzero(kind <= WEIGHT_ONLY)
    jet_vars = np.flatnonzero((kind == JES) | (kind == JER))
    # The b-tagging weight of n tagged jets, as the product over the jets computed it.
    btag_power = np.empty((n_var, n_jet + 1))
    for v in range(n_var):
        btag_sf = 0.95 + (0.03 * sign[v] if kind[v] == 3 else 0.0)
        btag_power[v, 0] = 1.0
        for n in range(1, n_jet + 1):
            btag_power[v, n] = btag_power[v, n - 1] * btag_sf
    jes_max = 0.0
    for v in jet_vars:
        if kind[v] == JES:
            jes_max = max(jes_max, abs(amplitude[v] * sign[v]))

    shifted = np.empty(n_jet)
    products_x = np.zeros(n_jet)  # zero beyond the event's last jet: numpy summed the padding
    products_y = np.zeros(n_jet)
    top = np.empty(4)
    eta_power = np.empty((n_jet, 4))  # (|eta| / 2.8) ** p of the event's jets, p = 1, 2, 3
    hash_state = np.empty(n_jet, np.uint64)  # the smearing hash after the event and jet keys
    smear_state = np.empty(n_jet, np.uint64)
    smear_u1 = np.empty(n_jet)
    n_written = 0
    for e in range(n_ev):
        f = flavour[e]
        pt0, pt1 = l_pt[e, 0], l_pt[e, 1]
        same_flavour = l_is_mu[e, 0] == l_is_mu[e, 1]

        # Lepton energy scales: on every event with two leptons (the preselection may change).
        for v in lepton_vars:
            is_mes = kind[v] == MES
            moved0, moved1 = l_is_mu[e, 0] == is_mes, l_is_mu[e, 1] == is_mes
            if not (moved0 or moved1):  # the nominal event, its regions and MT2
                if presel[e]:
                    w = nominal_weight[e]
                    for r in range(2):
                        if nominal_regions[e, r]:
                            value[v, r, f] += w
                            variance[v, r, f] += w * w
                    if nominal_regions[e, 2]:
                        if n_cand == len(cand_ev):
                            cand_var, cand_ev, cand_known, cand = _grow(
                                cand_var, cand_ev, cand_known, cand
                            )
                        cand_var[n_cand], cand_ev[n_cand], cand_known[n_cand] = v, e, True
                        cand[n_cand, 0] = w
                        cand[n_cand, 1:6] = 0.0
                        n_cand += 1
                continue
            factor = 1 + sign[v] * (0.005 if is_mes else 0.01)
            q0 = pt0 * factor if moved0 else pt0
            q1 = pt1 * factor if moved1 else pt1
            dl0, dl1 = q0 - pt0, q1 - pt1
            met_x = met_x0[e] - (dl0 * l_cos[e, 0] + dl1 * l_cos[e, 1])
            met_y = met_y0[e] - (dl0 * l_sin[e, 0] + dl1 * l_sin[e, 1])
            # mll as kinematics.invariant_mass (a sum of two, in either order).
            e0 = math.sqrt((q0 * l_cosh[e, 0]) * (q0 * l_cosh[e, 0]) + l_mass[e, 0] * l_mass[e, 0])
            e1 = math.sqrt((q1 * l_cosh[e, 1]) * (q1 * l_cosh[e, 1]) + l_mass[e, 1] * l_mass[e, 1])
            px = q0 * l_cos[e, 0] + q1 * l_cos[e, 1]
            py = q0 * l_sin[e, 0] + q1 * l_sin[e, 1]
            pz = q0 * l_sinh[e, 0] + q1 * l_sinh[e, 1]
            e01 = e0 + e1
            mll = math.sqrt(max(((e01 * e01 - px * px) - py * py) - pz * pz, 0.0))
            if not (
                q0 > (4.0 if l_is_mu[e, 0] else 4.5)
                and q1 > (4.0 if l_is_mu[e, 1] else 4.5)
                and mll > 10
            ):
                continue
            swapped = q1 > q0  # numpy's argsort of -pT (stable for two)
            a = 1 if swapped else 0
            s0, s1 = (q1, q0) if swapped else (q0, q1)
            met = np.hypot(met_x, met_y)
            w = nominal_weight[e]  # the lepton scale factors do not depend on lepton pT here
            if (
                s0 < 25
                and met > 250
                and nominal_lead[e] > 150
                and met / (s0 + s1) > 12
                and met / (met + (s0 + s1) + nominal_ht4[e]) > 0.44
            ):
                r = 0 if s1 < 10 else 1
                value[v, r, f] += w
                variance[v, r, f] += w * w
            if nominal_n_b[e] >= 1 and (not same_flavour or abs(mll - Z_MASS) > 20):
                mt_a = 2 * (s0 * met - s0 * (l_cos[e, a] * met_x + l_sin[e, a] * met_y))
                mt_b = 2 * (s1 * met - s1 * (l_cos[e, 1 - a] * met_x + l_sin[e, 1 - a] * met_y))
                bound = min(np.sqrt(max(mt_a, 0.0)), np.sqrt(max(mt_b, 0.0)))
                if bound > MT2_CUT:
                    if n_cand == len(cand_ev):
                        cand_var, cand_ev, cand_known, cand = _grow(
                            cand_var, cand_ev, cand_known, cand
                        )
                    cand_var[n_cand], cand_ev[n_cand], cand_known[n_cand] = v, e, False
                    cand[n_cand, 0], cand[n_cand, 1], cand[n_cand, 2] = w, met_x, met_y
                    cand[n_cand, 3], cand[n_cand, 4] = s0, s1
                    cand[n_cand, 5] = 1.0 if swapped else 0.0
                    n_cand += 1

        if not presel[e]:  # every other variation's region requires the nominal preselection
            continue
        off_z = not same_flavour or abs(nominal_mll[e] - Z_MASS) > 20
        lep0, lep1 = 1 + 5.0 / pt0, 1 + 5.0 / pt1
        # The event's jets, once for all variations.
        last, n_tagged, any_b = 0, 0, False
        for j in range(n_jet):
            if j_valid[e, j]:
                last = j + 1
                n_tagged += j_btag[e, j] and j_pt[e, j] > JET_PT
                any_b = any_b or (j_central[e, j] and j_btag[e, j])

        for v in weight_vars:
            w = _weight(
                kind[v], sign[v], lep0, lep1, gen[e], pu[e], pu_up[e], pu_down[e],
                lhe[e, index[v]] if kind[v] == 1 else 1.0, btag_power[v, n_tagged],
            )  # fmt: skip
            for r in range(3):
                if nominal_regions[e, r]:
                    value[v, r, f] += w
                    variance[v, r, f] += w * w

        # Jet variations move an event into a region only if it can reach one: a soft
        # leading lepton (four-body) or a central b-tagged jet off the Z peak (SR-mt2).
        if not (pt0 < 25 or (off_z and any_b)) or len(jet_vars) == 0:
            continue
        for j in range(last, n_written):
            products_x[j] = products_y[j] = 0.0
        n_written = last
        met0 = np.hypot(met_x0[e], met_y0[e])
        # MT2^2 moves by at most 4 E_T(lepton) |change of the missing momentum| (below).
        et_max = max(
            math.sqrt(l_mass[e, 0] * l_mass[e, 0] + pt0 * pt0),
            math.sqrt(l_mass[e, 1] * l_mass[e, 1] + pt1 * pt1),
        )
        mt2_sq = nominal_mt2[e] * nominal_mt2[e]
        mt0_0 = 2 * (pt0 * met0 - pt0 * (l_cos[e, 0] * met_x0[e] + l_sin[e, 0] * met_y0[e]))
        mt0_1 = 2 * (pt1 * met0 - pt1 * (l_cos[e, 1] * met_x0[e] + l_sin[e, 1] * met_y0[e]))
        # Per event: the |eta| powers, sum over jets of (1 + |eta|^p) pT, the largest pTs
        # a JES shift can give, the hash state of each jet before the variation's key.
        jes_sum = np.zeros(4)
        jes_lead, jes_b = 0.0, 0.0
        event_state = _splitmix(np.uint64(0) ^ event[e])
        for j in range(last):
            t = abs(j_eta[e, j]) / JET_ETA
            eta_power[j, 1], eta_power[j, 2], eta_power[j, 3] = t, t * t, math.pow(t, 3.0)
            hash_state[j] = _splitmix(event_state ^ np.uint64(j))
            if j_valid[e, j]:
                most = 0.0
                for p in range(1, 4):
                    jes_sum[p] += (1 + eta_power[j, p]) * j_pt[e, j]
                    most = max(most, eta_power[j, p])
                if j_central[e, j]:
                    x = j_pt[e, j] * (1 + jes_max * (1 + most) * (1 + SLACK))
                    jes_lead = max(jes_lead, x)
                    if j_btag[e, j]:
                        jes_b = max(jes_b, x)
        bounds = (pt0, pt1, off_z, met0, mt0_0, mt0_1, mt2_sq, et_max)
        jes_reachable = _reachable(
            jes_max * max(jes_sum[1], jes_sum[2], jes_sum[3]), jes_lead, jes_b, *bounds
        )

        for v in jet_vars:
            k = kind[v]
            if k == JES:
                if not jes_reachable:
                    continue
                p = int(power[v])
                d = abs(amplitude[v] * sign[v]) * jes_sum[p]
                if not _reachable(d, jes_lead, jes_b, *bounds):
                    continue
                for j in range(last):
                    if not j_valid[e, j]:  # padding: no effect on any sum, count or weight
                        shifted[j] = j_pt[e, j]
                    else:
                        shift = amplitude[v] * (1.0 + eta_power[j, p])
                        shifted[j] = j_pt[e, j] * (1 + sign[v] * shift)
            else:
                # The first uniform number bounds the smearing before its logarithm.
                key = np.uint64(1000 + index[v])
                d, lead_max, b_max = 0.0, 0.0, 0.0
                for j in range(last):
                    if j_valid[e, j]:
                        state = _splitmix(hash_state[j] ^ key)
                        u1 = _uniform(state)
                        smear_state[j], smear_u1[j] = state, u1
                        i = 0
                        while i < len(RADIUS_U1) and u1 < RADIUS_U1[i]:
                            i += 1
                        most = width[v] * RADIUS[i] * (1 + SLACK)
                        d += most * j_pt[e, j]
                        if j_central[e, j]:
                            x = j_pt[e, j] * (1 + most)
                            lead_max = max(lead_max, x)
                            if j_btag[e, j]:
                                b_max = max(b_max, x)
                if not _reachable(d, lead_max, b_max, *bounds):
                    continue
                for j in range(last):
                    if not j_valid[e, j]:
                        shifted[j] = j_pt[e, j]
                    else:
                        u2 = _uniform(smear_state[j] + np.uint64(1))
                        smear = np.sqrt(-2 * np.log(smear_u1[j])) * np.cos(2 * np.pi * u2)
                        shifted[j] = j_pt[e, j] * max(1 + width[v] * smear, 0.0)
            n_b, n_tag, lead, ht4 = 0, 0, 0.0, 0.0
            top[:] = 0.0
            for j in range(last):
                x = shifted[j] if j_central[e, j] and shifted[j] > JET_PT else 0.0
                n_b += x > 0 and j_btag[e, j]
                n_tag += j_valid[e, j] and j_btag[e, j] and shifted[j] > JET_PT
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
            for j in range(last):
                dj = (shifted[j] - j_pt[e, j]) * j_valid[e, j]
                products_x[j], products_y[j] = dj * j_cos[e, j], dj * j_sin[e, j]
            met_x = met_x0[e] - _pairwise_sum(products_x, n_jet) - 0.0
            met_y = met_y0[e] - _pairwise_sum(products_y, n_jet) - 0.0
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
            known = False
            if candidate:  # MT2 of the shifted event from the nominal's, where that decides
                reach = 4 * et_max * np.hypot(met_x - met_x0[e], met_y - met_y0[e])
                reach = reach * (1 + MT2_SLACK) + MT2_SLACK * (mt2_sq + MT2_CUT * MT2_CUT)
                known = mt2_sq - reach > MT2_CUT * MT2_CUT
                candidate = known or not (mt2_sq + reach < MT2_CUT * MT2_CUT)
            if not (four_body or candidate):
                continue
            w = _weight(
                k, sign[v], lep0, lep1, gen[e], pu[e], pu_up[e], pu_down[e],
                lhe[e, index[v]] if k == 1 else 1.0, btag_power[v, n_tag],
            )  # fmt: skip
            if four_body:
                r = 0 if pt1 < 10 else 1
                value[v, r, f] += w
                variance[v, r, f] += w * w
            if candidate:
                if n_cand == len(cand_ev):
                    cand_var, cand_ev, cand_known, cand = _grow(cand_var, cand_ev, cand_known, cand)
                cand_var[n_cand], cand_ev[n_cand], cand_known[n_cand] = v, e, known
                cand[n_cand, 0], cand[n_cand, 1], cand[n_cand, 2] = w, met_x, met_y
                cand[n_cand, 3], cand[n_cand, 4], cand[n_cand, 5] = pt0, pt1, 0.0
                n_cand += 1
    return (
        value,
        variance,
        cand_var[:n_cand],
        cand_ev[:n_cand],
        cand_known[:n_cand],
        cand[:n_cand],
    )


@numba.njit(cache=True)
def _grow(cand_var, cand_ev, cand_known, cand):
    return (
        np.concatenate((cand_var, np.empty_like(cand_var))),
        np.concatenate((cand_ev, np.empty_like(cand_ev))),
        np.concatenate((cand_known, np.empty_like(cand_known))),
        np.concatenate((cand, np.empty_like(cand))),
    )
