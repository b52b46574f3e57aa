"""Z -> mu mu events with CMS drift-tube (DT) segments, for the segment-efficiency T&P.

Muons are NanoAOD ``Muon_*`` (plus tracker-hit counts), trigger objects are NanoAOD
``TrigObj_*``. Each muon in the DT acceptance is extrapolated to the chambers it crosses
(``MuonExtrap_*``: chamber, local position, distance to the chamber edges); each chamber
reconstructs a segment near the crossing with a true efficiency recorded in the truth, lower
within 15 cm of the chamber edges (outside the fiducial region). A few noise segments are
scattered over random chambers.
"""

from __future__ import annotations

import numpy as np

from analysis_kernels.generate.common import event_header, f32, i32, jagged, record, uniform_phi
from analysis_kernels.generate.precision import mantissa_bits, reduce_mantissa

Z_MASS, Z_WIDTH = 91.1876, 2.4952
STATION_RADIUS = np.array([431.0, 512.0, 617.0, 728.0])  # cm, MB1..MB4
WHEEL_HALF_LENGTH = 127.0  # cm; five wheels cover |z| < 635 cm
SECTOR_WIDTH = np.radians(30.0)
EDGE_EFFICIENCY_FACTOR = 0.6  # near a chamber edge, part of the track misses the cells
RESIDUAL_SIGMA = 1.5  # cm, segment position resolution plus multiple scattering
Z_FRACTION = 0.85


def chamber_efficiencies(seed: int) -> np.ndarray:
    """True efficiency of each chamber, indexed [wheel + 2, sector - 1, station - 1]."""
    rng = np.random.default_rng([seed, 0xD7])
    eff = np.clip(rng.normal(0.975, 0.01, (5, 12, 4)), 0.9, 0.995)
    degraded = rng.random((5, 12, 4)) < 0.05
    return np.where(degraded, rng.uniform(0.55, 0.85, (5, 12, 4)), eff)


def dataset_truth(seed: int) -> dict:
    eff = chamber_efficiencies(seed)
    return {
        "chamber_efficiency": [
            {"wheel": w - 2, "sector": s + 1, "station": st + 1, "efficiency": float(eff[w, s, st])}
            for w in range(5)
            for s in range(12)
            for st in range(4)
        ],
        "edge_efficiency_factor": EDGE_EFFICIENCY_FACTOR,
        "z_fraction": Z_FRACTION,
    }


def _dimuons(rng, n):
    """Two muons per event: a Z decay, or a non-resonant pair from the background."""
    is_z = rng.random(n) < Z_FRACTION
    mass = np.where(
        is_z, Z_MASS + Z_WIDTH / 2 * np.tan(np.pi * (rng.random(n) - 0.5)), rng.uniform(50, 130, n)
    )
    mass = np.clip(mass, 40, 200)
    pt_z = rng.exponential(12.0, n)
    rap = rng.normal(0, 1.2, n)
    phi_z = uniform_phi(rng, n)
    # Decay in the rest frame, then boost: back-to-back muons of momentum m/2.
    cos_t = rng.uniform(-1, 1, n)
    phi_d = uniform_phi(rng, n)
    p = mass / 2
    sin_t = np.sqrt(1 - cos_t**2)
    d = np.stack([p * sin_t * np.cos(phi_d), p * sin_t * np.sin(phi_d), p * cos_t], axis=1)
    mt = np.hypot(mass, pt_z)
    boson = np.stack([pt_z * np.cos(phi_z), pt_z * np.sin(phi_z), mt * np.sinh(rap)], axis=1)
    energy = mt * np.cosh(rap)
    beta = boson / energy[:, None]
    muons = []
    for sign in (1, -1):
        q = sign * d
        b2 = (beta**2).sum(1)
        gamma = 1 / np.sqrt(1 - b2)
        bq = (beta * q).sum(1)
        e_rest = p
        lab = q + ((gamma - 1) * bq / np.where(b2 > 0, b2, 1) + gamma * e_rest)[:, None] * beta
        pt = np.hypot(lab[:, 0], lab[:, 1])
        muons.append((pt, np.arcsinh(lab[:, 2] / pt), np.arctan2(lab[:, 1], lab[:, 0])))
    return is_z, muons


def _crossings(eta, phi):
    """Chambers crossed by straight tracks: flat arrays over (muon, station)."""
    n = len(eta)
    radius = np.tile(STATION_RADIUS, n)
    muon = np.repeat(np.arange(n), 4)
    station = np.tile(np.arange(1, 5), n)
    z = radius * np.sinh(np.repeat(eta, 4))
    wheel = np.floor((z + 5 * WHEEL_HALF_LENGTH) / (2 * WHEEL_HALF_LENGTH)).astype(int) - 2
    inside = np.abs(z) < 5 * WHEEL_HALF_LENGTH
    phi_r = np.repeat(phi, 4)
    sector = np.round(phi_r / SECTOR_WIDTH).astype(int) % 12 + 1
    dphi = np.angle(np.exp(1j * (phi_r - (sector - 1) * SECTOR_WIDTH)))
    x = radius * np.tan(dphi)
    y = z - wheel * 2 * WHEEL_HALF_LENGTH
    edge_x = radius * np.tan(SECTOR_WIDTH / 2) - np.abs(x)
    edge_y = WHEEL_HALF_LENGTH - np.abs(y)
    keep = inside
    return {
        k: v[keep]
        for k, v in dict(
            muon=muon,
            station=station,
            wheel=wheel,
            sector=sector,
            x=x,
            y=y,
            edge_x=edge_x,
            edge_y=edge_y,
        ).items()
    }


def generate_batch(rng: np.random.Generator, n: int, first_event: int, seed: int):
    eff_table = chamber_efficiencies(seed)
    is_z, (mu1, mu2) = _dimuons(rng, n)
    n_extra = rng.poisson(0.3, n)
    n_mu = 2 + n_extra
    extra_event = np.repeat(np.arange(n), n_extra)
    extra = (
        3 + rng.exponential(5, len(extra_event)),
        rng.uniform(-2.4, 2.4, len(extra_event)),
        uniform_phi(rng, len(extra_event)),
    )

    # Flat muon arrays, event by event: the pair first, then the extra muons.
    event = np.concatenate([np.arange(n), np.arange(n), extra_event])
    pt, eta, phi = (np.concatenate([a, b, c]) for a, b, c in zip(mu1, mu2, extra, strict=True))
    origin = np.concatenate([np.zeros(n, int), np.ones(n, int), np.full(len(extra_event), 2)])
    order = np.lexsort((origin, event))
    event, pt, eta, phi, origin = event[order], pt[order], eta[order], phi[order], origin[order]
    total = len(event)
    pair = origin < 2
    charge = np.where(origin == 0, 1, np.where(origin == 1, -1, rng.choice([-1, 1], total)))
    iso = np.where(pair & is_z[event], rng.exponential(0.02, total), rng.exponential(0.3, total))
    # Rounded as written (6 bits in NanoAOD): the trigger decision below sees the stored value.
    iso = reduce_mantissa(f32(iso), mantissa_bits("Muon_tkRelIso"))
    tight = rng.random(total) < np.where(pair, 0.96, 0.5)
    z0 = rng.normal(0, 4.0, n)
    dz = np.where(pair, z0[event] + rng.normal(0, 0.01, total), rng.normal(0, 5, total))
    strip = rng.poisson(np.where(pair, 12, 7), total)
    pixel = rng.poisson(np.where(pair, 3, 1), total)

    # DT crossings and segments, with per-chamber efficiency lowered near edges.
    cross = _crossings(eta, phi)
    in_fiducial = (cross["edge_x"] > 15) & (cross["edge_y"] > 15)
    eff = eff_table[cross["wheel"] + 2, cross["sector"] - 1, cross["station"] - 1]
    eff = np.where(in_fiducial, eff, eff * EDGE_EFFICIENCY_FACTOR)
    found = rng.random(len(eff)) < eff
    seg_event = event[cross["muon"][found]]
    seg = {k: cross[k][found] for k in ("wheel", "sector", "station")}
    seg_x = cross["x"][found] + rng.normal(0, RESIDUAL_SIGMA, found.sum())
    n_noise = rng.poisson(0.05, n)
    noise_event = np.repeat(np.arange(n), n_noise)
    m = len(noise_event)
    noise = {
        "wheel": rng.integers(-2, 3, m),
        "sector": rng.integers(1, 13, m),
        "station": rng.integers(1, 5, m),
    }
    noise_x = (
        rng.uniform(-1, 1, m) * STATION_RADIUS[noise["station"] - 1] * np.tan(SECTOR_WIDTH / 2)
    )
    s_event = np.concatenate([seg_event, noise_event])
    s_order = np.argsort(s_event, kind="stable")
    n_seg = np.bincount(s_event, minlength=n)
    segs = {k: np.concatenate([seg[k], noise[k]])[s_order] for k in seg}

    # Muon index of each crossing, local to its event (NanoAOD's *Idx convention).
    first_in_event = np.r_[0, np.cumsum(n_mu)[:-1]]
    x_event = event[cross["muon"]]
    n_x = np.bincount(x_event, minlength=n)

    # Trigger objects: an isolated-muon HLT object on each triggering muon.
    fired = tight & (iso < 0.15) & (pt > 27) & (rng.random(total) < 0.92)
    n_trig = np.bincount(event[fired], minlength=n)

    batch = event_header(first_event, n)
    batch["HLT_IsoMu27"] = n_trig > 0
    batch["Muon"] = record(
        Muon_pt=jagged(n_mu, f32(pt)),
        Muon_eta=jagged(n_mu, f32(eta)),
        Muon_phi=jagged(n_mu, f32(phi)),
        Muon_mass=jagged(n_mu, f32(np.full(total, 0.10566))),
        Muon_charge=jagged(n_mu, i32(charge)),
        Muon_tightId=jagged(n_mu, tight),
        Muon_tkRelIso=jagged(n_mu, f32(iso)),
        Muon_dz=jagged(n_mu, f32(dz)),
        Muon_nValidStripHits=jagged(n_mu, i32(strip)),
        Muon_nValidPixelHits=jagged(n_mu, i32(pixel)),
    )
    batch["TrigObj"] = record(
        TrigObj_pt=jagged(n_trig, f32(pt[fired] * rng.normal(1, 0.01, fired.sum()))),
        TrigObj_eta=jagged(n_trig, f32(eta[fired] + rng.normal(0, 0.005, fired.sum()))),
        TrigObj_phi=jagged(n_trig, f32(phi[fired] + rng.normal(0, 0.005, fired.sum()))),
        TrigObj_id=jagged(n_trig, i32(np.full(fired.sum(), 13))),
        TrigObj_filterBits=jagged(n_trig, i32(np.full(fired.sum(), 2 | 8))),
    )
    batch["MuonExtrap"] = record(
        MuonExtrap_muonIdx=jagged(n_x, i32(cross["muon"] - first_in_event[x_event])),
        MuonExtrap_wheel=jagged(n_x, i32(cross["wheel"])),
        MuonExtrap_sector=jagged(n_x, i32(cross["sector"])),
        MuonExtrap_station=jagged(n_x, i32(cross["station"])),
        MuonExtrap_x=jagged(n_x, f32(cross["x"])),
        MuonExtrap_y=jagged(n_x, f32(cross["y"])),
        MuonExtrap_edgeX=jagged(n_x, f32(cross["edge_x"])),
        MuonExtrap_edgeY=jagged(n_x, f32(cross["edge_y"])),
    )
    batch["DTSegment"] = record(
        DTSegment_wheel=jagged(n_seg, i32(segs["wheel"])),
        DTSegment_sector=jagged(n_seg, i32(segs["sector"])),
        DTSegment_station=jagged(n_seg, i32(segs["station"])),
        DTSegment_x=jagged(n_seg, f32(np.concatenate([seg_x, noise_x])[s_order])),
    )
    return batch, {"events": n, "generated_Z": int(is_z.sum())}
