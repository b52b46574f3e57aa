"""Two-lepton events for the ATLAS top-squark four-body search, in NanoAOD layout.

A mix of dileptonic ttbar, single-lepton backgrounds (with a fake second lepton now and
then) and a compressed four-body signal: two soft leptons, a hard ISR jet and large missing
transverse momentum. Per-event weights (``genWeight``, ``puWeight*``, ``LHEScaleWeight``)
feed the weight systematics; energy-scale and smearing systematics act on the objects.
"""

from __future__ import annotations

import numpy as np

from analysis_kernels.generate.common import event_header, f32, i32, jagged, record, uniform_phi

PROCESSES = {"ttbar_2l": 0.55, "single_lepton": 0.35, "signal_4body": 0.10}
WEIGHTS = {"ttbar_2l": 1.0, "single_lepton": 1.0, "signal_4body": 0.05}
ELECTRON_MASS, MUON_MASS = 0.000511, 0.10566


def dataset_truth(seed: int) -> dict:
    return {"process_fractions": PROCESSES, "process_weights": WEIGHTS}


def _leptons(rng, n_lep, pt):
    """Split leptons into electrons and muons, with ID and isolation."""
    total = n_lep.sum()
    is_mu = rng.random(total) < 0.5
    event = np.repeat(np.arange(len(n_lep)), n_lep)
    charge = rng.choice([-1, 1], total)
    # Leptons of one event have opposite charges, unless the second is a fake.
    first = np.r_[True, event[1:] != event[:-1]] if total else np.zeros(0, bool)
    prev_charge = np.r_[0, charge[:-1]]
    charge = np.where(~first & (rng.random(total) < 0.9), -prev_charge, charge)
    eta = rng.uniform(-2.4, 2.4, total)
    phi = uniform_phi(rng, total)
    iso = rng.exponential(0.04, total)
    good = rng.random(total) < 0.93
    out = {}
    for name, sel, mass in (("Electron", ~is_mu, ELECTRON_MASS), ("Muon", is_mu, MUON_MASS)):
        counts = np.bincount(event[sel], minlength=len(n_lep))
        fields = {
            f"{name}_pt": f32(pt[sel]),
            f"{name}_eta": f32(eta[sel]),
            f"{name}_phi": f32(phi[sel]),
            f"{name}_mass": f32(np.full(sel.sum(), mass)),
            f"{name}_charge": i32(charge[sel]),
        }
        if name == "Electron":
            fields["Electron_cutBased"] = i32(np.where(good[sel], rng.integers(3, 5, sel.sum()), 1))
            fields["Electron_pfRelIso03_all"] = f32(iso[sel])
        else:
            fields["Muon_tightId"] = good[sel]
            fields["Muon_pfRelIso04_all"] = f32(iso[sel])
        out[name] = record(**{k: jagged(counts, v) for k, v in fields.items()})
    return out


def generate_batch(rng: np.random.Generator, n: int, first_event: int, seed: int):
    names = list(PROCESSES)
    process = rng.choice(len(names), n, p=list(PROCESSES.values()))
    is_tt, is_1l, is_sig = (process == i for i in range(3))

    # Leptons: two for ttbar and signal; one (plus a 15% fake) for single-lepton.
    n_lep = np.where(is_1l, 1 + (rng.random(n) < 0.15), 2)
    lep_event = np.repeat(np.arange(n), n_lep)
    soft = is_sig[lep_event]
    lep_pt = np.where(
        soft, 4.0 + rng.exponential(8.0, n_lep.sum()), 15.0 + rng.exponential(40.0, n_lep.sum())
    )

    # Jets: b jets and light jets; the signal has one hard ISR jet.
    n_jet = np.where(is_sig, 1 + rng.poisson(1.2, n), np.where(is_tt, 2, 1) + rng.poisson(1.5, n))
    jet_event = np.repeat(np.arange(n), n_jet)
    first_jet = np.r_[0, np.cumsum(n_jet)[:-1]]
    is_first = np.zeros(n_jet.sum(), bool)
    is_first[first_jet[n_jet > 0]] = True
    isr = is_first & is_sig[jet_event]
    jet_pt = np.where(
        isr,
        250.0 + rng.exponential(150.0, len(jet_event)),
        25.0 + rng.exponential(45.0, len(jet_event)),
    )
    b_like = np.where(
        is_tt[jet_event], rng.random(len(jet_event)) < 0.6, rng.random(len(jet_event)) < 0.1
    )
    btag = np.where(b_like, rng.beta(5, 1.2, len(jet_event)), rng.beta(1, 12, len(jet_event)))
    jet_phi = uniform_phi(rng, len(jet_event))

    # Missing momentum: neutrinos, plus the neutralinos recoiling against the ISR jet.
    met_x = rng.normal(0, np.where(is_tt, 60.0, 40.0))
    met_y = rng.normal(0, np.where(is_tt, 60.0, 40.0))
    isr_pt = np.zeros(n)
    isr_phi = np.zeros(n)
    isr_pt[jet_event[isr]] = jet_pt[isr]
    isr_phi[jet_event[isr]] = jet_phi[isr]
    recoil = np.where(is_sig, 0.9 * isr_pt, 0.0)
    met_x -= recoil * np.cos(isr_phi)
    met_y -= recoil * np.sin(isr_phi)

    # Jets are stored by falling pT, as in NanoAOD.
    order = np.lexsort((-jet_pt, jet_event))
    jet_eta = rng.uniform(-2.8, 2.8, len(jet_event))
    batch = event_header(first_event, n)
    batch["genWeight"] = f32(np.array(list(WEIGHTS.values()))[process])
    pu = rng.normal(1.0, 0.1, n)
    batch["puWeight"] = f32(pu)
    batch["puWeightUp"] = f32(pu * (1.0 + np.abs(rng.normal(0.05, 0.02, n))))
    batch["puWeightDown"] = f32(pu * (1.0 - np.abs(rng.normal(0.05, 0.02, n))))
    batch["MET_pt"] = f32(np.hypot(met_x, met_y))
    batch["MET_phi"] = f32(np.arctan2(met_y, met_x))
    scale = 1.0 + 0.1 * rng.normal(0, 1, (n, 1)) * np.array([[1, 1, 1, 0.5, 0, -0.5, -1, -1, -1]])
    batch["LHEScaleWeight"] = jagged(np.full(n, 9), f32(scale.reshape(-1)))
    batch.update(_leptons(rng, n_lep, lep_pt))
    batch["Jet"] = record(
        Jet_pt=jagged(n_jet, f32(jet_pt[order])),
        Jet_eta=jagged(n_jet, f32(jet_eta[order])),
        Jet_phi=jagged(n_jet, f32(jet_phi[order])),
        Jet_mass=jagged(n_jet, f32(0.1 * jet_pt[order])),
        Jet_btagDeepFlavB=jagged(n_jet, f32(btag[order])),
    )
    counts = {"events": n} | {
        f"generated_{p}": int((process == i).sum()) for i, p in enumerate(names)
    }
    return batch, counts
