"""The D+ / Ds mass fit: two Gaussian peaks over an exponential background.

An extended binned maximum-likelihood fit (iminuit) of the best-candidate mass histogram.
The two peaks share one relative resolution, as they come from the same vertex fit.
"""

from __future__ import annotations

import numpy as np
from iminuit import Minuit
from iminuit.cost import ExtendedBinnedNLL
from scipy.special import ndtr

DS_MASS, DPLUS_MASS = 1.96835, 1.86966


def _exp_cdf(x, slope, lo, hi):
    """CDF of exp(slope * x) normalised on [lo, hi]."""
    if abs(slope) < 1e-9:
        return (x - lo) / (hi - lo)
    return np.expm1(slope * (x - lo)) / np.expm1(slope * (hi - lo))


def fit_ds_dplus(histogram, upper: float | None = None) -> dict:
    """Fit the mass histogram; return yields, masses, resolution, with uncertainties.

    Only bins entirely below ``upper`` are fitted: above the selection's mass window the
    histogram is empty by construction, which no smooth background describes.
    """
    edges = histogram.axes[0].edges
    n_bins = (
        len(edges) - 1 if upper is None else int(np.searchsorted(edges, upper, side="right")) - 1
    )
    counts = histogram.values()[:n_bins]
    edges = edges[: n_bins + 1]
    lo, hi = edges[0], edges[-1]
    total = counts.sum()

    def model(x, n_ds, n_dplus, n_bkg, m_ds, m_dplus, rel_sigma, slope):
        return (
            n_ds * ndtr((x - m_ds) / (rel_sigma * m_ds))
            + n_dplus * ndtr((x - m_dplus) / (rel_sigma * m_dplus))
            + n_bkg * _exp_cdf(x, slope, lo, hi)
        )

    fit = Minuit(
        ExtendedBinnedNLL(counts, edges, model),
        n_ds=0.2 * total,
        n_dplus=0.1 * total,
        n_bkg=0.7 * total,
        m_ds=DS_MASS,
        m_dplus=DPLUS_MASS,
        rel_sigma=0.01,
        slope=-1.0,
    )
    fit.limits["n_ds", "n_dplus", "n_bkg"] = (0, None)
    fit.limits["m_ds"] = (1.93, 2.00)
    fit.limits["m_dplus"] = (1.84, 1.90)
    fit.limits["rel_sigma"] = (0.002, 0.05)
    fit.migrad()
    fit.hesse()
    result = {
        name: {"value": float(fit.values[name]), "error": float(fit.errors[name])}
        for name in fit.parameters
    }
    result["valid"] = bool(fit.valid)
    result["range"] = [float(lo), float(hi)]
    return result
