"""CMS drift-tube segment efficiency by tag-and-probe on Z -> mu mu (seed talk backup slide).

Pairs of opposite-charge muons, both with >= 6 strip and >= 1 pixel hits, isolated,
Delta R > 0.3, |Delta z| < 0.1 cm, |m - mZ| < 10 GeV. The tag is Tight, pT > 27 GeV and
matched to the isolated single-muon trigger (HLT_IsoMu27). The probe has pT > 20 GeV; its
extrapolation to each DT chamber it crosses is a probe of that chamber when it has matched
segments in >= 2 other stations. The chamber is efficient if a segment lies within 15 cm
of the extrapolation in R-phi. Efficiencies per chamber (wheel, sector, station) and versus
pT and eta, in the full solid angle and in the fiducial region (15 cm from the edges).
The searches over muon pairs, trigger objects and segments are compiled loops
(:mod:`analysis_kernels.kernels.dt`) over the flat columns, the pair masses from fast
four-vectors checked against numpy's near the window and bin edges, and the histograms are
filled once per chunk for both selections
(:func:`analysis_kernels.kernels.fill.fill_categories`).
"""

from __future__ import annotations

from collections.abc import Mapping

import awkward as ak
import hist
import numpy as np
from scipy.stats import beta

from analysis_kernels.analyses.base import (
    Analysis,
    ChunkResult,
    Output,
    clone,
    column,
    columns,
    records,
)
from analysis_kernels.kernels.dt import chamber_probes, muon_roles, tag_probe_pairs
from analysis_kernels.kernels.fill import fill, fill_categories

F32, I32 = "var * float32", "var * int32"
BRANCHES = {
    "event": "uint64",
    "HLT_IsoMu27": "bool",
    **{f"Muon_{f}": F32 for f in ("pt", "eta", "phi", "tkRelIso", "dz")},
    "Muon_charge": I32,
    "Muon_tightId": "var * bool",
    "Muon_nValidStripHits": I32,
    "Muon_nValidPixelHits": I32,
    "TrigObj_eta": F32,
    "TrigObj_phi": F32,
    "TrigObj_id": I32,
    "TrigObj_filterBits": I32,
    **{f"MuonExtrap_{f}": I32 for f in ("muonIdx", "wheel", "sector", "station")},
    **{f"MuonExtrap_{f}": F32 for f in ("x", "edgeX", "edgeY")},
    **{f"DTSegment_{f}": I32 for f in ("wheel", "sector", "station")},
    "DTSegment_x": F32,
}
Z_MASS, MUON_MASS = 91.1876, 0.10566
MASS_WINDOW = 10  # GeV around the Z mass
MASS_AXIS = hist.axis.Regular(
    40, Z_MASS - MASS_WINDOW, Z_MASS + MASS_WINDOW, name="mass", label=r"$m(\mu\mu)$ [GeV]"
)
MATCH_WINDOW = 15.0  # cm, in R-phi
FIDUCIAL_MARGIN = 15.0  # cm from the chamber edges
ISO_MUON_FILTER = 8  # TrigObj_filterBits bit of the isolated single-muon trigger
SELECTIONS = ["all", "fiducial"]
PT_BINS = [20, 25, 30, 35, 40, 45, 50, 60, 80, 120, 200]


def _probe_muons(ev: ak.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whether each muon (flat) is the probe of some tag-probe pair, the pair masses, and the
    muons' offsets."""
    offsets, pt, eta, phi, dz, iso, charge, strips, pixels, tight = columns(
        ev,
        "Muon",
        [
            "pt",
            "eta",
            "phi",
            "dz",
            "tkRelIso",
            "charge",
            "nValidStripHits",
            "nValidPixelHits",
            "tightId",
        ],
    )
    trig = columns(ev, "TrigObj", ["eta", "phi", "id", "filterBits"])
    muon_cuts = np.asarray([0.1, 27, 20, 0.1], dtype=np.float32)  # iso, tag pT, probe pT, cone
    is_tag, probe_ok, n_pairs = muon_roles(
        offsets, pt, eta, phi, iso, strips, pixels, tight, column(ev, "HLT_IsoMu27"),
        *trig, ISO_MUON_FILTER, muon_cuts,
    )  # fmt: skip
    px, py = pt * np.cos(phi), pt * np.sin(phi)  # as four_vector
    cuts = np.asarray([0.3, 0.1, Z_MASS, MASS_WINDOW, MUON_MASS], dtype=np.float32)
    is_probe, mass = tag_probe_pairs(
        offsets, px, py, pt, eta, phi, charge, dz, is_tag, probe_ok, n_pairs, cuts,
        np.array([MASS_AXIS.edges[0], MASS_AXIS.widths[0], MASS_AXIS.size]),
    )  # fmt: skip
    return is_probe, mass, offsets


CHAMBER_FIELDS = ["wheel", "sector", "station", "passed", "fiducial", "pt", "eta", "event_index"]


def probes(ev: ak.Array) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Chamber probes (extrapolations under study) as flat columns with their pass flag and
    event index, and the T&P masses."""
    is_probe, mass, mu_offsets = _probe_muons(ev)
    ext = columns(
        ev, "MuonExtrap", ["muonIdx", "wheel", "sector", "station", "x", "edgeX", "edgeY"]
    )
    seg = columns(ev, "DTSegment", ["wheel", "sector", "station", "x"])
    _, mu_pt, mu_eta = columns(ev, "Muon", ["pt", "eta"])
    chambers = chamber_probes(
        *ext, *seg, mu_offsets, is_probe, mu_pt, mu_eta,
        np.float32(MATCH_WINDOW), 2, np.float32(FIDUCIAL_MARGIN),
    )  # fmt: skip
    return dict(zip(CHAMBER_FIELDS, chambers, strict=True)), mass


def _efficiency_histograms() -> Output:
    sel = hist.axis.StrCategory(SELECTIONS, name="selection")
    station = hist.axis.Integer(1, 5, name="station", underflow=False, overflow=False)
    passed = hist.axis.Boolean(name="passed")
    return {
        "chamber": hist.Hist(
            sel,
            hist.axis.Integer(-2, 3, name="wheel", underflow=False, overflow=False),
            hist.axis.Integer(1, 13, name="sector", underflow=False, overflow=False),
            station,
            passed,
        ),
        "pt": hist.Hist(
            sel, hist.axis.Variable(PT_BINS, name="pt", label="probe $p_T$ [GeV]"), station, passed
        ),
        "eta": hist.Hist(
            sel,
            hist.axis.Regular(24, -1.2, 1.2, name="eta", label=r"probe $\eta$"),
            station,
            passed,
        ),
    }


_EMPTY = _efficiency_histograms()


def _histograms() -> Output:
    """New empty histograms: copies of the efficiency ones made once (making them took 0.2
    ms a chunk, copying 0.03), and the mass one on :data:`MASS_AXIS` as it is now."""
    return {name: clone(h) for name, h in _EMPTY.items()} | {"mass": hist.Hist(MASS_AXIS)}


def process(events: ak.Array) -> ChunkResult:
    flat, mass = probes(events)
    out = _histograms()
    selections = {"all": None, "fiducial": flat["fiducial"]}
    station, passed = flat["station"], flat["passed"]
    fill_categories(out["chamber"], selections, flat["wheel"], flat["sector"], station, passed)
    fill_categories(out["pt"], selections, flat["pt"], station, passed)
    fill_categories(out["eta"], selections, flat["eta"], station, passed)
    fill(out["mass"], mass)
    out["cutflow"] = {
        "events": len(events),
        "tag_probe_pairs": len(mass),
        "chamber_probes": len(flat["passed"]),
    }
    snapshot = records(
        {
            "event": column(events, "event")[flat["event_index"]],
            **{f: v for f, v in flat.items() if f != "event_index"},
        }
    )
    return out, snapshot


def efficiency(
    passed: np.ndarray, total: np.ndarray, cl: float = 0.683
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Efficiency with Clopper-Pearson interval bounds (NaN where there are no probes)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        eff = passed / total
    alpha = (1 - cl) / 2
    lo = np.where(passed > 0, beta.ppf(alpha, passed, total - passed + 1), 0.0)
    hi = np.where(passed < total, beta.ppf(1 - alpha, passed + 1, total - passed), 1.0)
    return eff, np.where(total > 0, lo, np.nan), np.where(total > 0, hi, np.nan)


def chamber_efficiencies(output: Output, selection: str) -> list[dict]:
    """Measured efficiency of every chamber with at least one probe."""
    h = output["chamber"][hist.loc(selection), ...]
    counts = h.values()  # wheel x sector x station x passed
    passed, total = counts[..., 1], counts.sum(-1)
    eff, lo, hi = efficiency(passed, total)
    rows = []
    for w, s, st in zip(*np.nonzero(total), strict=True):
        rows.append(
            {
                "wheel": w - 2,
                "sector": s + 1,
                "station": st + 1,
                "probes": int(total[w, s, st]),
                "efficiency": float(eff[w, s, st]),
                "low": float(lo[w, s, st]),
                "high": float(hi[w, s, st]),
            }
        )
    return rows


def summarize(output: Output, params: Mapping) -> dict:
    summary = {"cutflow": output["cutflow"]}
    for sel in SELECTIONS:
        by_station = output["chamber"][hist.loc(sel), sum, sum, :, :].values()
        eff, lo, hi = efficiency(by_station[:, 1], by_station.sum(1))
        summary[sel] = {
            "by_station": {
                f"MB{i + 1}": {
                    "efficiency": float(eff[i]),
                    "low": float(lo[i]),
                    "high": float(hi[i]),
                }
                for i in range(4)
            },
            "chambers": chamber_efficiencies(output, sel),
        }
    return summary


def headline(summary: dict) -> list[str]:
    lines = [f"cut flow {summary['cutflow']}"]
    for sel in SELECTIONS:
        stations = ", ".join(
            f"{k} {v['efficiency']:.3f}" for k, v in summary[sel]["by_station"].items()
        )
        lines.append(
            f"efficiency ({sel}): {stations}; {len(summary[sel]['chambers'])} chambers probed"
        )
    return lines


ANALYSIS = Analysis(
    name="dt",
    title="CMS drift-tube segment efficiency, tag-and-probe on Z -> mu mu",
    branches=BRANCHES,
    process=process,
    summarize=summarize,
    figures="dt_plots",
    headline=headline,
)
