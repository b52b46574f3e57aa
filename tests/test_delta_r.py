"""The compiled Delta R cuts decide as the columnar code does, bit for bit: on random
pairs, on pairs whose Delta R lies within a few ulps of the cone (where the float64 square
cannot decide and hypotf must), across the wrap of Delta phi, and with NaN and infinities."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from analysis_kernels import kinematics
from analysis_kernels.kernels.delta_r import closer_than, delta_phi, farther_than
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


@numba.njit(cache=True)
def _delta_phis(phi1, phi2):
    out = np.empty(len(phi1), dtype=np.float32)
    for i in range(len(phi1)):
        out[i] = delta_phi(phi1[i], phi2[i])
    return out


def test_delta_phi_is_the_columnar_one_bit_for_bit():
    """Random angles, angles whose shifted difference lies a few ulps around 0, +-2 pi and
    4 pi (where the wrap changes), angles far outside [-pi, pi), NaN and infinities."""
    rng = np.random.default_rng(4)
    phi2 = rng.uniform(-np.pi, np.pi, 100_000).astype(F32)
    phi1 = rng.uniform(-np.pi, np.pi, 100_000).astype(F32)
    two_pi = F32(2 * np.pi)
    for k, shift in enumerate([F32(0), two_pi, -two_pi, 2 * two_pi]):
        near = (shift - F32(np.pi) + phi2[k::8]).astype(F32)  # phi1 - phi2 + pi = shift
        steps = rng.integers(-3, 4, len(near))
        for _ in range(3):
            toward = np.where(steps > 0, F32(np.inf), F32(-np.inf))
            near = np.where(steps != 0, np.nextafter(near, toward), near)
            steps = steps - np.sign(steps)
        phi1[k::8] = near
    phi1[4::8] = np.nextafter(phi1[4::8] + F32(np.pi), F32(0))  # just inside
    phi1[5::16] = rng.uniform(-40, 40, len(phi1[5::16]))
    phi1[7::97], phi1[6::89], phi2[3::83] = np.nan, np.inf, -np.inf
    pi = F32(np.pi)  # the shifted difference on 0, 2 pi and 4 pi exactly:
    phi1[:6], phi2[:6] = [-pi, pi, pi, 3 * pi, -pi, pi], [0, 0, -pi, 0, pi, -pi]
    with np.errstate(invalid="ignore"):
        columnar = kinematics.delta_phi(phi1, phi2)
    assert columnar.dtype == F32
    np.testing.assert_array_equal(_delta_phis(phi1, phi2), columnar)


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
