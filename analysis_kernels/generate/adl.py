"""Events in the schema of the IRIS-HEP ADL benchmark file (CMS Run2012B SingleMu NanoAOD).

MET, jets with a b-tag discriminant, muons and electrons, with the branch names and types
of that file (``Jet_btag``, ``Jet_puId``, ``MET_sumet``, ``Muon_pfRelIso03_all``, ...).
Single-muon triggered events: a hard muon most of the time, Z -> mu mu and ttbar-like
events mixed in so that every query (dimuon mass window, trijet near the top mass,
three-lepton Z candidates) has something to select.
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

FRACTIONS = {"w_jets": 0.75, "z_mumu": 0.15, "ttbar": 0.07, "wz_3l": 0.03}


def dataset_truth(seed: int) -> dict:
    return {"process_fractions": FRACTIONS}


def _objects(rng, counts, pt_min, pt_scale, eta_max):
    total = int(counts.sum())
    return (
        pt_min + rng.exponential(pt_scale, total),
        rng.uniform(-eta_max, eta_max, total),
        uniform_phi(rng, total),
    )


def _z_pairs(rng, n):
    """Two opposite-charge leptons from a Z decay, back to back in the transverse plane-ish."""
    mass = 91.19 + 2.5 / 2 * np.tan(np.pi * (rng.random(n) - 0.5))
    mass = np.clip(mass, 50, 150)
    phi = uniform_phi(rng, n)
    eta1, eta2 = rng.normal(0, 1.1, n), rng.normal(0, 1.1, n)
    # m^2 = 2 pt1 pt2 (cosh(deta) - cos(dphi)) with dphi = pi and pt1 = pt2 * r
    r = rng.uniform(0.6, 1.0, n)
    pt2 = mass / np.sqrt(2 * r * (np.cosh(eta1 - eta2) + 1))
    return (pt2 * r, eta1, phi), (pt2, eta2, phi + np.pi)


def generate_batch(rng: np.random.Generator, n: int, first_event: int, seed: int):
    names = list(FRACTIONS)
    process = rng.choice(len(names), n, p=list(FRACTIONS.values()))
    is_z, is_tt, is_3l = process == 1, process == 2, process == 3

    # Muons: one W muon (or a Z pair), plus soft extras.
    (z1, z2) = _z_pairs(rng, n)
    n_main = np.where(is_z | is_3l, 2, 1)
    n_extra = rng.poisson(0.25, n)
    n_mu = n_main + n_extra
    w_mu = (25 + rng.exponential(20, n), rng.uniform(-2.1, 2.1, n), uniform_phi(rng, n))
    extra = _objects(rng, n_extra, 3, 8, 2.4)
    event_of_extra = np.repeat(np.arange(n), n_extra)
    paired = is_z | is_3l
    mu_event = np.concatenate([np.arange(n), np.flatnonzero(paired), event_of_extra])
    order = np.lexsort((np.arange(len(mu_event)), mu_event))  # per event: pair first, extras after
    mu = [
        np.concatenate([np.where(paired, z1[k], w_mu[k]), z2[k][paired], extra[k]])[order]
        for k in range(3)
    ]
    mu_event = mu_event[order]
    local = local_index(n_mu)
    charge = rng.choice([-1, 1], len(mu_event))
    second = (local == 1) & paired[mu_event]
    charge[second] = -charge[np.flatnonzero(second) - 1]

    # Electrons: one for the three-lepton (WZ-like) events, rare fakes otherwise.
    n_ele = np.where(is_3l, 1, 0) + rng.poisson(0.15, n)
    ele = _objects(rng, n_ele, 7, 20, 2.5)

    # Jets: ttbar has 4+ (2 b), others a few; b-tag near 1 for b jets.
    n_jet = np.where(is_tt, 4, 0) + rng.poisson(np.where(is_tt, 1.0, 2.2), n)
    jets = _objects(rng, n_jet, 15, 30, 4.7)
    jet_event = np.repeat(np.arange(n), n_jet)
    is_b = is_tt[jet_event] & (local_index(n_jet) < 2)
    btag = np.where(is_b, rng.beta(6, 1.3, len(jet_event)), rng.beta(1.2, 6, len(jet_event)))
    jet_order = np.lexsort((-jets[0], jet_event))

    met = rng.rayleigh(np.where(is_tt, 45.0, np.where(is_z, 12.0, 25.0)), n)
    batch = event_header(first_event, n, run=194_000)
    batch["HLT_IsoMu24"] = rng.random(n) < 0.95
    batch["MET_pt"] = f32(met)
    batch["MET_phi"] = f32(uniform_phi(rng, n))
    batch["MET_sumet"] = f32(met + rng.gamma(4, 100, n))
    batch["Muon"] = record(
        Muon_pt=jagged(n_mu, f32(mu[0])),
        Muon_eta=jagged(n_mu, f32(mu[1])),
        Muon_phi=jagged(n_mu, f32(mu[2])),
        Muon_mass=jagged(n_mu, f32(np.full(len(mu_event), 0.105658))),
        Muon_charge=jagged(n_mu, i32(charge)),
        Muon_pfRelIso03_all=jagged(n_mu, f32(rng.exponential(0.08, len(mu_event)))),
        Muon_pfRelIso04_all=jagged(n_mu, f32(rng.exponential(0.1, len(mu_event)))),
        Muon_tightId=jagged(n_mu, rng.random(len(mu_event)) < 0.9),
    )
    batch["Electron"] = record(
        Electron_pt=jagged(n_ele, f32(ele[0])),
        Electron_eta=jagged(n_ele, f32(ele[1])),
        Electron_phi=jagged(n_ele, f32(ele[2])),
        Electron_mass=jagged(n_ele, f32(np.full(len(ele[0]), 0.000511))),
        Electron_charge=jagged(n_ele, i32(rng.choice([-1, 1], len(ele[0])))),
        Electron_pfRelIso03_all=jagged(n_ele, f32(rng.exponential(0.08, len(ele[0])))),
    )
    batch["Jet"] = record(
        Jet_pt=jagged(n_jet, f32(jets[0][jet_order])),
        Jet_eta=jagged(n_jet, f32(jets[1][jet_order])),
        Jet_phi=jagged(n_jet, f32(jets[2][jet_order])),
        Jet_mass=jagged(n_jet, f32(0.12 * jets[0][jet_order])),
        Jet_btag=jagged(n_jet, f32(btag[jet_order])),
        Jet_puId=jagged(n_jet, rng.random(len(jet_event))[jet_order] < 0.9),
    )
    counts = {"events": n} | {
        f"generated_{p}": int((process == i).sum()) for i, p in enumerate(names)
    }
    return batch, counts
