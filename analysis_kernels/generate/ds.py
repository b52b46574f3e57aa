"""Ds+ -> phi(mu mu) pi+ normalisation-channel ntuples, with the D+ peak and background.

Branches follow the seed analysis' flat ntuples: per-candidate ``Triplet2_Mass``,
``TripletVtx2_Chi2``, ``RefittedPV2_NTracks``, ``FlightDistBS_SV_Significance``, the
candidate's muon and track momenta ``Mu01_Pt``/``Mu02_Pt``/``Tr_Pt`` (equal, bit for bit, to
the ``Muon_pt``/``Track_pt`` they came from, which is how the analysis matches them), and
NanoAOD-style ``Muon_*`` and ``Track_*`` collections. ``Triplet2_genFlav`` is the MC truth
(431 Ds, 411 D+, 0 combinatorial); the analysis never reads it.
"""

from __future__ import annotations

import numpy as np

from analysis_kernels.generate.common import (
    event_header,
    f32,
    i32,
    jagged,
    local_index,
    record,
    uniform_phi,
)

DS_MASS, DPLUS_MASS = 1.96835, 1.86966
RESOLUTION = 0.012  # GeV, mass resolution of the mu mu pi vertex fit (about 0.6%)
FRACTIONS = {"Ds": 0.10, "Dplus": 0.04}
MASS_RANGE = (1.55, 2.15)
BACKGROUND_SLOPE = -1.2  # 1/GeV, falling combinatorial background


def dataset_truth(seed: int) -> dict:
    return {
        "ds_mass": DS_MASS,
        "dplus_mass": DPLUS_MASS,
        "resolution": RESOLUTION,
        "fractions": FRACTIONS,
    }


def _falling_mass(rng, n):
    """Masses from exp(slope * m) truncated to MASS_RANGE (inverse-CDF sampling)."""
    lo, hi = MASS_RANGE
    a, b = np.exp(BACKGROUND_SLOPE * lo), np.exp(BACKGROUND_SLOPE * hi)
    return np.log(a + rng.random(n) * (b - a)) / BACKGROUND_SLOPE


def generate_batch(rng: np.random.Generator, n: int, first_event: int, seed: int):
    kind = rng.random(n)
    is_ds = kind < FRACTIONS["Ds"]
    is_dp = (~is_ds) & (kind < FRACTIONS["Ds"] + FRACTIONS["Dplus"])
    signal = is_ds | is_dp

    n_mu = 2 + rng.poisson(1.0, n)
    n_tr = 1 + rng.poisson(3.0, n)
    n_tri = 1 + rng.poisson(0.6, n)

    # Muons: the signal candidate's muons are entries 0 and 1, always good.
    mu_local = local_index(n_mu)
    mu_event = np.repeat(np.arange(n), n_mu)
    forced_good = signal[mu_event] & (mu_local < 2)
    n_mu_tot = n_mu.sum()
    mu_pt = f32(3.0 + rng.exponential(4.0, n_mu_tot))
    is_global = forced_good | (rng.random(n_mu_tot) < 0.80)
    is_pf = forced_good | (rng.random(n_mu_tot) < 0.90)

    # Tracks: the signal candidate's track is entry 0, prompt.
    tr_local = local_index(n_tr)
    tr_event = np.repeat(np.arange(n), n_tr)
    n_tr_tot = n_tr.sum()
    prompt = signal[tr_event] & (tr_local == 0)
    tr_pt = f32(1.0 + rng.exponential(3.0, n_tr_tot))
    tr_dz = f32(np.where(prompt, rng.normal(0, 2.0, n_tr_tot), rng.normal(0, 9.0, n_tr_tot)))
    tr_dxy = f32(np.where(prompt, rng.normal(0, 0.03, n_tr_tot), rng.normal(0, 0.25, n_tr_tot)))

    # Triplets: candidate 0 of a signal event is the true decay.
    t_local = local_index(n_tri)
    t_event = np.repeat(np.arange(n), n_tri)
    n_t = n_tri.sum()
    true_cand = signal[t_event] & (t_local == 0)
    flav = np.where(true_cand, np.where(is_ds[t_event], 431, 411), 0)
    peak = np.where(flav == 431, DS_MASS, DPLUS_MASS)
    mass = np.where(true_cand, rng.normal(peak, RESOLUTION), _falling_mass(rng, n_t))
    chi2 = np.where(true_cand, rng.chisquare(3, n_t), 2.0 + rng.chisquare(3, n_t) * 3.0)
    ntracks = np.where(true_cand, 2 + rng.poisson(10, n_t), rng.poisson(2.5, n_t))
    fd_sig = np.where(true_cand, 0.5 + rng.exponential(8.0, n_t), rng.exponential(1.5, n_t))

    mu_start = (np.cumsum(n_mu) - n_mu)[t_event]
    i1 = rng.integers(0, n_mu[t_event])
    i2 = (i1 + 1 + rng.integers(0, n_mu[t_event] - 1)) % n_mu[t_event]
    itr = rng.integers(0, n_tr[t_event])
    i1, i2, itr = (
        np.where(true_cand, 0, i1),
        np.where(true_cand, 1, i2),
        np.where(true_cand, 0, itr),
    )
    tr_start = (np.cumsum(n_tr) - n_tr)[t_event]

    batch = event_header(first_event, n)
    batch["Muon"] = record(
        Muon_pt=jagged(n_mu, mu_pt),
        Muon_eta=jagged(n_mu, f32(rng.uniform(-2.4, 2.4, n_mu_tot))),
        Muon_phi=jagged(n_mu, f32(uniform_phi(rng, n_mu_tot))),
        Muon_charge=jagged(n_mu, i32(rng.choice([-1, 1], n_mu_tot))),
        Muon_isGlobal=jagged(n_mu, is_global),
        Muon_isPF=jagged(n_mu, is_pf),
    )
    batch["Track"] = record(
        Track_pt=jagged(n_tr, tr_pt),
        Track_eta=jagged(n_tr, f32(rng.uniform(-2.5, 2.5, n_tr_tot))),
        Track_phi=jagged(n_tr, f32(uniform_phi(rng, n_tr_tot))),
        Track_dz=jagged(n_tr, tr_dz),
        Track_dxy=jagged(n_tr, tr_dxy),
    )
    batch["Triplet"] = record(
        Triplet2_Mass=jagged(n_tri, f32(mass)),
        TripletVtx2_Chi2=jagged(n_tri, f32(chi2)),
        RefittedPV2_NTracks=jagged(n_tri, i32(ntracks)),
        FlightDistBS_SV_Significance=jagged(n_tri, f32(fd_sig)),
        Mu01_Pt=jagged(n_tri, mu_pt[mu_start + i1]),
        Mu02_Pt=jagged(n_tri, mu_pt[mu_start + i2]),
        Tr_Pt=jagged(n_tri, tr_pt[tr_start + itr]),
        Triplet2_genFlav=jagged(n_tri, i32(flav)),
    )
    counts = {"events": n, "generated_Ds": int(is_ds.sum()), "generated_Dplus": int(is_dp.sum())}
    return batch, counts
