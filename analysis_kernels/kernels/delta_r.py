"""Delta R cuts in compiled loops, decided as the columnar code decides them, for less.

The columnar code (:func:`analysis_kernels.kinematics.delta_r`) computes the float32
``hypot(Delta eta, Delta phi)``, Delta phi wrapped into [-pi, pi) by numpy's remainder, and
compares it with the cone. The remainder (an fmod) and libm's hypotf were most of DT's
trigger matching (2.2 ms of a 100k-event chunk's 2.8). Here:

* Delta phi takes the remainder's result without its fmod where the shifted difference is
  within a period of [0, 2 pi) (:func:`delta_phi`);
* a cut is decided from the square of the length in float64 (exact products, one rounding)
  where that is more than 2^-20 from the cone's square: hypotf is within an ulp (2^-23) of
  the exact length, so it cannot fall on the other side. Nearer, and for NaN, hypotf decides;
* Delta eta alone decides where it suffices: hypot is never below either side (and is NaN
  beside a NaN Delta phi unless the other side is infinite).

The same decisions, bit for bit, including NaN and infinite inputs (tests/test_delta_r.py).
"""

from __future__ import annotations

import numba
import numpy as np

F32 = np.float32
_BELOW, _ABOVE = 1 - 2.0**-20, 1 + 2.0**-20


@numba.njit(cache=True, inline="always")
def delta_phi(phi1, phi2):
    """``phi1 - phi2`` wrapped into [-pi, pi) in float32, as the columnar code wraps it.

    numpy's remainder of x by 2 pi is an exact fmod, plus 2 pi where that is negative. For
    x within a period of [0, 2 pi) (any two angles in [-pi, pi]) that is x, x + 2 pi (a
    rounded sum, as numpy's) or x - 2 pi (exact, so the same), taken here with selects: the
    fmod call was a sixth of DT's muon searches, and its branch mispredicted."""
    pi, two_pi = F32(np.pi), F32(2 * np.pi)
    x = phi1 - phi2 + pi
    below = (x < 0) & (x > -two_pi)
    above = (x >= two_pi) & (x < 2 * two_pi)
    if (x >= 0) & (x < two_pi) | below | above:
        return x + (two_pi if below else (-two_pi if above else F32(0))) - pi
    return np.remainder(x, two_pi) - pi


@numba.njit(cache=True, inline="always")
def against_cone(deta, dphi, cone):
    """The float32 ``hypot(deta, dphi)`` against ``cone``: -1 below, 1 above, 0 neither
    (equal, or NaN)."""
    d2 = np.float64(deta) * deta + np.float64(dphi) * dphi
    c2 = np.float64(cone) * cone
    if d2 < c2 * _BELOW:
        return -1
    if d2 > c2 * _ABOVE:
        return 1
    r = np.hypot(deta, dphi)
    return -1 if r < cone else (1 if r > cone else 0)


@numba.njit(cache=True, inline="always")
def closer_than(eta1, phi1, eta2, phi2, cone):
    """``delta_r(eta1, phi1, eta2, phi2) < cone``."""
    deta = eta1 - eta2
    return abs(deta) < cone and against_cone(deta, delta_phi(phi1, phi2), cone) < 0


@numba.njit(cache=True, inline="always")
def farther_than(eta1, phi1, eta2, phi2, cone):
    """``delta_r(eta1, phi1, eta2, phi2) > cone``."""
    deta, dphi = eta1 - eta2, delta_phi(phi1, phi2)
    if abs(deta) > cone:
        return not np.isnan(dphi) or np.isinf(deta)
    return against_cone(deta, dphi, cone) > 0
