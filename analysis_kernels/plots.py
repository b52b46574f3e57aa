"""Figures of the three analyses, styled as the experiments' own (mplhep).

Each function writes PNG files into a directory and returns their paths or, given no
directory (in a notebook), returns the figures, which the notebook shows inline.
"""

from __future__ import annotations

from pathlib import Path

import hist
import matplotlib.pyplot as plt
import mplhep
import numpy as np
from scipy.stats import norm


def _file(directory: Path | None, name: str) -> Path | None:
    return None if directory is None else Path(directory) / name


def _save(fig, path: Path | None):
    """Write and close the figure; without a path, keep it open for the notebook to show."""
    if path is None:
        return fig
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def ds_mass_plot(h: hist.Hist, fit: dict, path: Path | None = None):
    """The mu mu pi mass with the fitted D+ and Ds peaks and background (seed Figure 5)."""
    plt.style.use(mplhep.style.CMS)
    fig, ax = plt.subplots()
    counts, centers = h.values(), h.axes[0].centers
    filled = counts > 0  # an empty bin (above the selection window) is no measurement
    ax.errorbar(
        centers[filled],
        counts[filled],
        yerr=np.sqrt(counts[filled]),  # Poisson
        fmt="o",
        color="black",
        markersize=4,
        label="Data (synthetic)",
    )
    ax.set_xlabel(h.axes[0].label)
    edges = h.axes[0].edges
    width = edges[1] - edges[0]
    v = {
        k: fit[k]["value"]
        for k in ("n_ds", "n_dplus", "n_bkg", "m_ds", "m_dplus", "rel_sigma", "slope")
    }
    lo, hi = fit["range"]
    x = np.linspace(lo, hi, 400)
    s = v["slope"]
    bkg = v["n_bkg"] * width * s * np.exp(s * (x - lo)) / np.expm1(s * (hi - lo))
    ds = v["n_ds"] * width * norm.pdf(x, v["m_ds"], v["rel_sigma"] * v["m_ds"])
    dp = v["n_dplus"] * width * norm.pdf(x, v["m_dplus"], v["rel_sigma"] * v["m_dplus"])
    ax.plot(x, bkg, "--", color="gray", label="Background")
    ax.plot(
        x,
        bkg + ds + dp,
        color="tab:red",
        label=f"Fit: $N(D_s)$={v['n_ds']:.0f}±{fit['n_ds']['error']:.0f}, "
        f"$N(D^+)$={v['n_dplus']:.0f}±{fit['n_dplus']['error']:.0f}",
    )
    ax.set_ylabel(f"Candidates / {1000 * width:.1f} MeV")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, 1.45 * counts.max())  # room above the peaks for the legend
    ax.legend(fontsize="small", loc="upper left")
    mplhep.cms.text("Simulation Preliminary", ax=ax)
    return _save(fig, path)


def ds_plots(output: dict, summary: dict, directory: Path | None = None) -> list:
    return [ds_mass_plot(output["mass"], summary["fit"], _file(directory, "ds_mass.png"))]


def stop_plots(output: dict, summary: dict, directory: Path | None = None) -> list:
    """Key variables after preselection, and signal-region yields with every variation."""
    plt.style.use(mplhep.style.ATLAS)
    paths = []
    for key in ("mll", "mt2"):
        fig, ax = plt.subplots()
        h = output[key]
        mplhep.histplot(
            [h[:, f] for f in h.axes["flavour"]],
            ax=ax,
            stack=True,
            histtype="fill",
            label=list(h.axes["flavour"]),
        )
        ax.set_yscale("log")
        ax.legend()
        mplhep.atlas.text("Simulation Internal", ax=ax)
        paths.append(_save(fig, _file(directory, f"stop_{key}.png")))
    yields = output["yields"].values().sum(axis=2)
    fig, ax = plt.subplots()
    regions = list(output["yields"].axes["region"])
    for r in range(len(regions)):
        ax.scatter(
            np.full(len(yields) - 1, r),
            yields[1:, r],
            marker="_",
            s=300,
            color="tab:blue",
            alpha=0.4,
        )
        ax.scatter([r], [yields[0, r]], marker="o", color="black")
    ax.set_xticks(range(len(regions)), regions)
    ax.set_ylabel("Weighted yield (dots: nominal; dashes: variations)")
    mplhep.atlas.text("Simulation Internal", ax=ax)
    paths.append(_save(fig, _file(directory, "stop_yields.png")))
    return paths


def dt_plots(output: dict, summary: dict, directory: Path | None = None) -> list:
    """Efficiency per chamber (wheel x sector, one panel per station) and versus pT, eta."""
    plt.style.use(mplhep.style.CMS)
    paths = []
    counts = output["chamber"][hist.loc("fiducial"), ...].values()
    with np.errstate(invalid="ignore", divide="ignore"):
        eff = counts[..., 1] / counts.sum(-1)
    fig, axes = plt.subplots(1, 4, figsize=(22, 6), sharey=True)
    for st, ax in enumerate(axes):
        mesh = ax.pcolormesh(
            np.arange(0.5, 13.5), np.arange(-2.5, 3.5), eff[:, :, st], vmin=0.5, vmax=1.0
        )
        ax.set_title(f"MB{st + 1}")
        ax.set_xlabel("sector")
    axes[0].set_ylabel("wheel")
    fig.colorbar(mesh, ax=axes, label="segment efficiency (fiducial)")
    paths.append(_save(fig, _file(directory, "dt_chamber_efficiency.png")))
    for var in ("pt", "eta"):
        fig, ax = plt.subplots()
        for sel, style in (("all", "o"), ("fiducial", "s")):
            h = output[var][hist.loc(sel), :, sum, :].values()
            with np.errstate(invalid="ignore", divide="ignore"):
                e = h[:, 1] / h.sum(1)
            ax.plot(output[var].axes[var].centers, e, style, label=sel)
        ax.set_xlabel(output[var].axes[var].label)
        ax.set_ylabel("DT segment efficiency")
        ax.set_ylim(0.5, 1.02)
        ax.legend()
        mplhep.cms.text("Simulation Preliminary", ax=ax)
        paths.append(_save(fig, _file(directory, f"dt_efficiency_{var}.png")))
    return paths


def simple_histograms(
    output: dict, summary: dict, directory: Path | None = None, prefix: str = "adl"
) -> list:
    """One plain figure per one-dimensional histogram."""
    plt.style.use(mplhep.style.CMS)
    paths = []
    for name, h in output.items():
        if getattr(h, "ndim", 0) != 1:
            continue
        fig, ax = plt.subplots()
        mplhep.histplot(h, ax=ax)
        ax.set_xlabel(h.axes[0].label)
        paths.append(_save(fig, _file(directory, f"{prefix}_{name}.png")))
    return paths
