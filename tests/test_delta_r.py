"""The compiled Delta R cuts decide as the columnar code does, bit for bit: on random
pairs, on pairs whose Delta R lies within a few ulps of the cone (where the float64 square
cannot decide and hypotf must), across the wrap of Delta phi, and with NaN and infinities."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from analysis_kernels.kernels.delta_r import closer_than, farther_than
from analysis_kernels.kinematics import delta_r

F32 = np.float32


@numba.njit(cache=True)
def _decide(eta1, phi1, eta2, phi2, cone):
    closer = np.empty(len(eta1), dtype=np.bool_)
    farther = np.empty(len(eta1), dtype=np.bool_)
    for i in range(len(eta1)):
        closer[i] = closer_than(eta1[i], phi1[i], eta2[i], phi2[i], cone)
        farther[i] = farther_than(eta1[i], phi1[i], eta2[i], phi2[i], cone)
    return closer, farther


def _check(eta1, phi1, eta2, phi2, cone):
    eta1, phi1, eta2, phi2 = (np.asarray(a, dtype=F32) for a in (eta1, phi1, eta2, phi2))
    columnar = delta_r(eta1, phi1, eta2, phi2)
    assert columnar.dtype == F32
    closer, farther = _decide(eta1, phi1, eta2, phi2, F32(cone))
    np.testing.assert_array_equal(closer, columnar < F32(cone))
    np.testing.assert_array_equal(farther, columnar > F32(cone))
    return columnar


@pytest.mark.parametrize("cone", [0.1, 0.3, 0.4])
def test_random_pairs_across_the_wrap_of_delta_phi(cone):
    rng = np.random.default_rng(1)
    n = 200_000
    eta2 = rng.uniform(-2.5, 2.5, n)
    phi2 = rng.uniform(-np.pi, np.pi, n)
    eta1 = eta2 + rng.normal(0, 2 * cone, n)
    phi1 = np.where(rng.random(n) < 0.5, phi2 + rng.normal(0, 2 * cone, n), -phi2)
    phi1[: n // 10] = rng.uniform(-12, 12, n // 10)  # outside [-pi, pi): the remainder
    columnar = _check(eta1, phi1, eta2, phi2, cone)
    assert 0.05 < np.mean(columnar < F32(cone)) < 0.95


@pytest.mark.parametrize("cone", [0.1, 0.3, 0.4])
def test_pairs_within_ulps_of_the_cone(cone):
    """Pairs at Delta R = cone, then moved by up to 4 ulps in eta: many fall where only
    hypotf can decide, and some on the cone exactly (neither closer nor farther)."""
    rng = np.random.default_rng(2)
    n = 100_000
    angle = rng.uniform(0, 2 * np.pi, n)
    eta2 = rng.uniform(-2, 2, n).astype(F32)
    phi2 = rng.uniform(-2, 2, n).astype(F32)
    eta1 = (eta2 + F32(cone) * np.cos(angle).astype(F32)).astype(F32)
    phi1 = (phi2 + F32(cone) * np.sin(angle).astype(F32)).astype(F32)
    steps = rng.integers(-4, 5, n)
    toward = np.where(steps > 0, F32(np.inf), F32(-np.inf))
    for _ in range(4):
        move = np.abs(steps) > 0
        eta1 = np.where(move, np.nextafter(eta1, toward), eta1)
        steps = steps - np.sign(steps)
    columnar = _check(eta1, phi1, eta2, phi2, cone)
    deta, dphi = eta1 - eta2, (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    square = deta.astype(np.float64) ** 2 + dphi.astype(np.float64) ** 2
    undecided = np.abs(square / np.float64(F32(cone)) ** 2 - 1) <= 2.0**-20
    assert undecided.mean() > 0.2  # the fallback is exercised
    assert np.any(columnar == F32(cone))


@pytest.mark.parametrize("cone", [0.1, 0.3, 0.4])
def test_lengths_within_an_ulp_of_the_cone(cone):
    """Delta eta a few ulps from the cone and a small Delta phi: the exact length lies within
    an ulp of the cone, where the float64 square and the rounded hypotf can disagree (a
    square just below the cone's whose hypotf rounds to the cone)."""
    rng = np.random.default_rng(3)
    n = 100_000
    eta1 = np.nextafter(F32(cone), F32(0)) + rng.integers(-6, 3, n) * np.spacing(F32(cone))
    eta1 = (eta1 * rng.choice([F32(-1), F32(1)], n)).astype(F32)
    phi1 = rng.uniform(-2e-3, 2e-3, n)
    zeros = np.zeros(n, dtype=F32)
    columnar = _check(eta1, phi1, zeros, zeros, cone)
    deta, dphi = eta1.astype(np.float64), ((phi1 + np.pi) % (2 * np.pi) - np.pi).astype(F32)
    square = deta**2 + dphi.astype(np.float64) ** 2
    assert np.any((columnar == F32(cone)) & (square < np.float64(F32(cone)) ** 2))


def test_nan_and_infinite_inputs():
    values = [np.nan, np.inf, -np.inf, 0.0, -0.0, 0.05, 3.0, np.pi, -np.pi, 1e30]
    grid = np.array(np.meshgrid(values, values, values[:5], values[:5])).reshape(4, -1)
    _check(*grid, 0.3)
