"""CMS drift-tube segment efficiency by tag-and-probe on Z -> mu mu (seed talk backup slide).

Pairs of opposite-charge muons, both with >= 6 strip and >= 1 pixel hits, isolated,
Delta R > 0.3, |Delta z| < 0.1 cm, |m - mZ| < 10 GeV. The tag is Tight, pT > 27 GeV and
matched to the isolated single-muon trigger (HLT_IsoMu27). The probe has pT > 20 GeV; its
extrapolation to each DT chamber it crosses is a probe of that chamber when it has matched
segments in >= 2 other stations. The chamber is efficient if a segment lies within 15 cm
of the extrapolation in R-phi. Efficiencies per chamber (wheel, sector, station) and versus
pT and eta, in the full solid angle and in the fiducial region (15 cm from the edges).
"""

from __future__ import annotations

from collections.abc import Mapping

import awkward as ak
import hist
import numpy as np
from scipy.stats import beta

from analysis_kernels.analyses.base import Analysis, ChunkResult, Output
from analysis_kernels.kinematics import delta_r, invariant_mass
from analysis_kernels.schema import collection

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
MATCH_WINDOW = 15.0  # cm, in R-phi
FIDUCIAL_MARGIN = 15.0  # cm from the chamber edges
ISO_MUON_FILTER = 8  # TrigObj_filterBits bit of the isolated single-muon trigger
SELECTIONS = ["all", "fiducial"]
PT_BINS = [20, 25, 30, 35, 40, 45, 50, 60, 80, 120, 200]


def _probe_muons(ev: ak.Array) -> tuple[ak.Array, ak.Array]:
    """Local indices of the probe muons of each event, and the tag-probe masses."""
    mu = collection(ev, "Muon")  # every Muon_ branch the analysis declares
    track_ok = (mu.nValidStripHits >= 6) & (mu.nValidPixelHits >= 1) & (mu.tkRelIso < 0.1)
    trig = (ev.TrigObj_id == 13) & ((ev.TrigObj_filterBits & ISO_MUON_FILTER) != 0)
    pairs_to = ak.cartesian(
        [mu[["eta", "phi"]], ak.zip({"eta": ev.TrigObj_eta[trig], "phi": ev.TrigObj_phi[trig]})],
        nested=True,
    )
    matched = ak.any(
        delta_r(pairs_to["0"].eta, pairs_to["0"].phi, pairs_to["1"].eta, pairs_to["1"].phi) < 0.1,
        axis=2,
    )
    is_tag = track_ok & mu.tightId & (mu.pt > 27) & matched & ev.HLT_IsoMu27

    idx = ak.argcartesian([mu.pt, mu.pt])
    t, p = idx["0"], idx["1"]
    tag, probe = mu[t], mu[p]
    mass = invariant_mass(
        tag.pt, tag.eta, tag.phi, MUON_MASS, probe.pt, probe.eta, probe.phi, MUON_MASS
    )
    good = (
        (t != p)
        & is_tag[t]
        & track_ok[p]
        & (probe.pt > 20)
        & (tag.charge * probe.charge < 0)
        & (delta_r(tag.eta, tag.phi, probe.eta, probe.phi) > 0.3)
        & (abs(tag.dz - probe.dz) < 0.1)
        & (abs(mass - Z_MASS) < 10)
    )
    return p[good], mass[good]


def _any_equal(left: ak.Array, right: ak.Array) -> ak.Array:
    """For each entry of ``left``, whether it equals some entry of ``right`` in its event."""
    pairs = ak.cartesian([left, right], nested=True)
    return ak.any(pairs["0"] == pairs["1"], axis=2)


def probes(ev: ak.Array) -> tuple[ak.Array, ak.Array]:
    """Chamber probes (extrapolations under study) with their pass flag, and T&P masses."""
    probe_idx, mass = _probe_muons(ev)
    ext = collection(ev, "MuonExtrap")
    seg = collection(ev, "DTSegment")
    es = ak.cartesian([ext, seg], nested=True)
    e, s = es["0"], es["1"]
    near = (
        (e.wheel == s.wheel)
        & (e.sector == s.sector)
        & (e.station == s.station)
        & (abs(e.x - s.x) < MATCH_WINDOW)
    )
    passed = ak.any(near, axis=2)
    # Matched stations of the same muon, other than the one under study.
    ee = ak.cartesian(
        [
            ext[["muonIdx", "station"]],
            ak.zip({"muonIdx": ext.muonIdx, "station": ext.station, "passed": passed}),
        ],
        nested=True,
    )
    other = (
        (ee["0"].muonIdx == ee["1"].muonIdx) & (ee["0"].station != ee["1"].station) & ee["1"].passed
    )
    n_other = ak.sum(other, axis=2)
    under_study = _any_equal(ext.muonIdx, probe_idx) & (n_other >= 2)
    chambers = ext[under_study]
    chambers["passed"] = passed[under_study]
    chambers["fiducial"] = (chambers.edgeX > FIDUCIAL_MARGIN) & (chambers.edgeY > FIDUCIAL_MARGIN)
    chambers["pt"] = ev.Muon_pt[chambers.muonIdx]
    chambers["eta"] = ev.Muon_eta[chambers.muonIdx]
    return chambers, mass


def _histograms() -> Output:
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
        "mass": hist.Hist(
            hist.axis.Regular(40, Z_MASS - 10, Z_MASS + 10, name="mass", label=r"$m(\mu\mu)$ [GeV]")
        ),
    }


def process(events: ak.Array) -> ChunkResult:
    chambers, mass = probes(events)
    out = _histograms()
    flat = {
        f: ak.to_numpy(ak.flatten(chambers[f]))
        for f in ("wheel", "sector", "station", "passed", "fiducial", "pt", "eta")
    }
    for name, mask in (("all", np.ones(len(flat["passed"]), bool)), ("fiducial", flat["fiducial"])):
        f = {k: v[mask] for k, v in flat.items()}
        out["chamber"].fill(name, f["wheel"], f["sector"], f["station"], f["passed"])
        out["pt"].fill(name, f["pt"], f["station"], f["passed"])
        out["eta"].fill(name, f["eta"], f["station"], f["passed"])
    out["mass"].fill(ak.flatten(mass))
    out["cutflow"] = {
        "events": len(events),
        "tag_probe_pairs": int(ak.sum(ak.num(mass))),
        "chamber_probes": len(flat["passed"]),
    }
    snapshot = ak.zip(
        {
            "event": ak.broadcast_arrays(events.event, chambers.wheel)[0],
            **{f: chambers[f] for f in flat},
        }
    )
    return out, ak.flatten(snapshot)


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
