"""Kinematics as plain functions over (awkward or numpy) arrays."""

from __future__ import annotations

import numpy as np


def delta_phi(phi1, phi2):
    """phi1 - phi2 wrapped into [-pi, pi)."""
    return (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi


def delta_r(eta1, phi1, eta2, phi2):
    return np.hypot(eta1 - eta2, delta_phi(phi1, phi2))


def four_vector(pt, eta, phi, mass):
    """Cartesian components (px, py, pz, E) of (pt, eta, phi, m)."""
    return (
        pt * np.cos(phi),
        pt * np.sin(phi),
        pt * np.sinh(eta),
        np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2),
    )


def system_mass(*vectors):
    """Invariant mass of the sum of any number of four-vectors."""
    px, py, pz, e = (sum(v[i] for v in vectors) for i in range(4))
    return np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0))


def invariant_mass(pt1, eta1, phi1, m1, pt2, eta2, phi2, m2):
    """Mass of a two-body system from (pt, eta, phi, m) of each body."""
    return system_mass(four_vector(pt1, eta1, phi1, m1), four_vector(pt2, eta2, phi2, m2))


def hash_normal(*keys: np.ndarray) -> np.ndarray:
    """Standard normal numbers that depend only on the integer keys (splitmix64 + Box-Muller).

    Smearing systematics use them so a smeared value is the same in any chunking and on
    any worker: the randomness belongs to the event, not to the run.
    """
    state = np.zeros(np.broadcast(*keys).shape, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for key in keys:
            state = _splitmix(state ^ np.asarray(key, dtype=np.uint64))
        u1 = ((_splitmix(state) >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
        u2 = ((_splitmix(state + np.uint64(1)) >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
    return np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)


def _splitmix(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))
