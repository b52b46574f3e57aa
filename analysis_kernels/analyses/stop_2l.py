"""ATLAS top-squark search with two opposite-charge leptons (JHEP 04 (2021) 165), four-body.

Exactly two opposite-charge signal leptons (e or mu), split into ee, mumu and e-mu; the
paper's key variables mll, MT2 (massless invisible particles), jet and b-jet counts, the
leading (ISR) jet and missing transverse momentum; cut-and-count signal regions. Every
systematic variation is evaluated on the same events in memory: the branches are read
once per chunk whatever the number of variations. The nominal runs as numpy code
(:func:`evaluate`); every other variation (lepton energy scales, jet energy scales and
resolution, weights), up to hundreds, runs in one compiled pass over the events
(:mod:`analysis_kernels.kernels.stop`).

Signal regions, on top of the preselection (2 OS leptons, pT > 4.5 / 4 GeV for e / mu,
mll > 10 GeV):
- SR4b-soft / SR4b-hard: four-body regions, pT(l1) < 25 GeV, ETmiss > 250 GeV,
  leading jet pT > 150 GeV, R2l = ETmiss / (pT(l1) + pT(l2)) > 12, R2l4j > 0.44,
  and pT(l2) below / above 10 GeV.
- SR-mt2: MT2 > 110 GeV, at least one b-jet, |mll - mZ| > 20 GeV for same flavour.
"""

from __future__ import annotations

from collections.abc import Mapping

import awkward as ak
import hist
import numpy as np
from mt2 import mt2

from analysis_kernels.analyses.base import Analysis, ChunkResult, Output
from analysis_kernels.analyses.systematics import (
    Variation,
    jer_width,
    jes_amplitude,
    jes_power,
    variations,
)
from analysis_kernels.columns import padded
from analysis_kernels.kernels.stop import KINDS, variations_pass
from analysis_kernels.kinematics import invariant_mass

F32, I32 = "var * float32", "var * int32"
BRANCHES = {
    "event": "uint64",
    "genWeight": "float32",
    "puWeight": "float32",
    "puWeightUp": "float32",
    "puWeightDown": "float32",
    "LHEScaleWeight": F32,
    "MET_pt": "float32",
    "MET_phi": "float32",
    **{f"Electron_{f}": F32 for f in ("pt", "eta", "phi", "mass", "pfRelIso03_all")},
    "Electron_charge": I32,
    "Electron_cutBased": I32,
    **{f"Muon_{f}": F32 for f in ("pt", "eta", "phi", "mass", "pfRelIso04_all")},
    "Muon_charge": I32,
    "Muon_tightId": "var * bool",
    **{f"Jet_{f}": F32 for f in ("pt", "eta", "phi", "btagDeepFlavB")},
}
REGIONS = ["SR4b-soft", "SR4b-hard", "SR-mt2"]
FLAVOURS = ["ee", "mm", "em"]
Z_MASS = 91.1876
JET_PT, JET_ETA, BJET_ETA, BTAG_CUT = 20.0, 2.8, 2.5, 0.3
MT2_CUT = 110.0


def _leptons(events: ak.Array) -> ak.Array:
    """Signal electrons and muons of each event, merged and sorted by falling pT."""
    ele = events[[f for f in events.fields if f.startswith("Electron_")]]
    mu = events[[f for f in events.fields if f.startswith("Muon_")]]
    e_ok = (ele.Electron_cutBased >= 3) & (ele.Electron_pfRelIso03_all < 0.15)
    m_ok = mu.Muon_tightId & (mu.Muon_pfRelIso04_all < 0.15)

    def pack(prefix, arr, ok, flavour):
        return ak.zip(
            {
                "pt": arr[f"{prefix}_pt"][ok],
                "eta": arr[f"{prefix}_eta"][ok],
                "phi": arr[f"{prefix}_phi"][ok],
                "mass": arr[f"{prefix}_mass"][ok],
                "charge": arr[f"{prefix}_charge"][ok],
                "is_mu": ak.values_astype(arr[f"{prefix}_pt"][ok] * 0 + flavour, bool),
            }
        )

    leptons = ak.concatenate([pack("Electron", ele, e_ok, 0), pack("Muon", mu, m_ok, 1)], axis=1)
    return leptons[ak.argsort(leptons.pt, axis=1, ascending=False)]


def preselect(events: ak.Array) -> dict[str, np.ndarray]:
    """Events with exactly two opposite-charge signal leptons, as flat numpy columns.

    Jets are padded to the largest multiplicity of the chunk so that every variation runs
    on regular arrays.
    """
    leptons = _leptons(events)
    two = ak.num(leptons) == 2
    two = two & ak.fill_none(ak.sum(leptons.charge, axis=1) == 0, False)
    sel = events[two]
    lep = leptons[two]
    cols = {f"l_{f}": padded(lep[f], 2, 0.0, np.float64) for f in ("pt", "eta", "phi", "mass")}
    cols["l_is_mu"] = padded(lep.is_mu, 2, False, bool)
    width = max(1, int(ak.max(ak.num(sel.Jet_pt), initial=0)))
    for f in ("pt", "eta", "phi", "btagDeepFlavB"):
        cols[f"j_{f}"] = padded(sel[f"Jet_{f}"], width, 0.0, np.float64)
    cols["j_valid"] = padded(sel.Jet_pt > 0, width, False, bool)
    for f in ("event", "genWeight", "puWeight", "puWeightUp", "puWeightDown", "MET_pt", "MET_phi"):
        cols[f] = ak.to_numpy(sel[f]).astype(np.uint64 if f == "event" else np.float64)
    cols["LHEScaleWeight"] = padded(sel.LHEScaleWeight, 9, 1.0, np.float64)
    # Variation-independent pieces, computed once per chunk.
    for p in ("l", "j"):
        cols[f"{p}_cos"], cols[f"{p}_sin"] = np.cos(cols[f"{p}_phi"]), np.sin(cols[f"{p}_phi"])
    cols["met_x"] = cols["MET_pt"] * np.cos(cols["MET_phi"])
    cols["met_y"] = cols["MET_pt"] * np.sin(cols["MET_phi"])
    cols["j_central"] = cols["j_valid"] & (np.abs(cols["j_eta"]) < JET_ETA)
    cols["j_btag"] = (cols["j_btagDeepFlavB"] > BTAG_CUT) & (np.abs(cols["j_eta"]) < BJET_ETA)
    return cols


def lepton_sf(pt, sign: int):
    """Lepton identification scale factor, with its uncertainty growing at low pT."""
    return 0.98 + sign * 0.01 * (1 + 5.0 / pt)


def weight(v: Variation, c: dict, l_pt: np.ndarray, j_pt: np.ndarray) -> np.ndarray:
    """Event weight under one variation: generator, pile-up, QCD scale, lepton and b-tag SFs."""
    pu = (
        {1: c["puWeightUp"], -1: c["puWeightDown"]}.get(v.sign) if v.kind == "pu" else c["puWeight"]
    )
    w = c["genWeight"] * pu * np.prod(lepton_sf(l_pt, v.sign if v.kind == "lepsf" else 0), axis=1)
    if v.kind == "scale":
        w = w * c["LHEScaleWeight"][:, v.index]
    tagged = c["j_valid"] & (c["j_btagDeepFlavB"] > BTAG_CUT) & (np.abs(c["j_eta"]) < BJET_ETA)
    btag_sf = 0.95 + (0.03 * v.sign if v.kind == "btag" else 0.0)
    return w * np.where(tagged & (j_pt > JET_PT), btag_sf, 1.0).prod(axis=1)


def shifted(v: Variation, c: dict) -> np.ndarray:
    """Lepton pT under a lepton energy-scale variation (the nominal's otherwise)."""
    l_pt = c["l_pt"]
    if v.kind in ("ees", "mes"):
        scale = 0.01 if v.kind == "ees" else 0.005
        flavour = c["l_is_mu"] if v.kind == "mes" else ~c["l_is_mu"]
        l_pt = l_pt * np.where(flavour, 1 + v.sign * scale, 1.0)
    return l_pt


def _sum_leading(values: np.ndarray, k: int) -> np.ndarray:
    """Sum of the ``k`` largest entries of each row."""
    if values.shape[1] <= k:
        return values.sum(1)
    return -np.partition(-values, k - 1, axis=1)[:, :k].sum(1)


def _mt(pt, phi, met, met_x, met_y):
    """Transverse mass of a massless lepton and the missing momentum."""
    return np.sqrt(np.maximum(2 * (pt * met - pt * (np.cos(phi) * met_x + np.sin(phi) * met_y)), 0))


def _mt2(l_pt, l_phi, l_mass, met_x, met_y) -> np.ndarray:
    """MT2 with massless invisible particles of each row (two leptons, the missing momentum)."""
    if not len(l_pt):
        return np.zeros(0)
    px, py = l_pt * np.cos(l_phi), l_pt * np.sin(l_phi)
    return mt2(
        l_mass[:, 0],
        px[:, 0],
        py[:, 0],
        l_mass[:, 1],
        px[:, 1],
        py[:, 1],
        met_x,
        met_y,
        0.0,
        0.0,
    )


def evaluate(v: Variation, c: dict) -> dict[str, np.ndarray]:
    """Key variables and region flags of the preselected events: the nominal, or a lepton
    energy-scale variation (:func:`process` runs every variation but the nominal in
    :func:`variations_pass`, which reuses the nominal's jet variables, MT2 and weight).

    MT2, the costly variable, is computed for every preselected event in the nominal (for
    its histogram) and otherwise only for events that pass every other cut of its region.
    """
    l_pt, j_pt = shifted(v, c), c["j_pt"]
    dl = l_pt - c["l_pt"]
    met_x = c["met_x"] - (dl * c["l_cos"]).sum(1)
    met_y = c["met_y"] - (dl * c["l_sin"]).sum(1)
    eta, phi, mass, is_mu = c["l_eta"], c["l_phi"], c["l_mass"], c["l_is_mu"]
    if v.kind in ("ees", "mes"):  # the leading lepton may change
        order = np.argsort(-l_pt, axis=1)
        l_pt, eta, phi, is_mu = (
            np.take_along_axis(a, order, axis=1) for a in (l_pt, eta, phi, is_mu)
        )
    met = np.hypot(met_x, met_y)
    mll = invariant_mass(
        l_pt[:, 0],
        eta[:, 0],
        phi[:, 0],
        mass[:, 0],
        l_pt[:, 1],
        eta[:, 1],
        phi[:, 1],
        mass[:, 1],
    )
    jets = c["j_central"] & (j_pt > JET_PT)
    jet_pt = np.where(jets, j_pt, 0.0)
    n_b = (jets & c["j_btag"]).sum(1)
    lead_jet = jet_pt.max(1)
    ht4 = _sum_leading(jet_pt, 4)
    presel = (l_pt > np.where(is_mu, 4.0, 4.5)).all(1) & (mll > 10)
    r2l = met / (l_pt[:, 0] + l_pt[:, 1])
    r2l4j = met / (met + l_pt.sum(1) + ht4)
    four_body = (
        presel & (l_pt[:, 0] < 25) & (met > 250) & (lead_jet > 150) & (r2l > 12) & (r2l4j > 0.44)
    )
    same_flavour = is_mu[:, 0] == is_mu[:, 1]
    mt2_candidates = presel & (n_b >= 1) & (~same_flavour | (np.abs(mll - Z_MASS) > 20))
    # MT2 <= mT(l_i, pTmiss) for each lepton: skip events that cannot pass the cut.
    bound = np.minimum(*(_mt(l_pt[:, i], phi[:, i], met, met_x, met_y) for i in (0, 1)))
    idx = np.flatnonzero(presel if v.kind == "nominal" else mt2_candidates & (bound > MT2_CUT))
    mt2_val = np.zeros(len(presel))
    mt2_val[idx] = _mt2(l_pt[idx], phi[idx], c["l_mass"][idx], met_x[idx], met_y[idx])
    regions = {
        "SR4b-soft": four_body & (l_pt[:, 1] < 10),
        "SR4b-hard": four_body & (l_pt[:, 1] >= 10),
        "SR-mt2": mt2_candidates & (mt2_val > MT2_CUT),
    }
    return {
        "weight": weight(v, c, l_pt, j_pt),
        "presel": presel,
        "mll": mll,
        "mt2": mt2_val,
        "met": met,
        "n_jets": jets.sum(1),
        "n_b": n_b,
        "lead_jet": lead_jet,
        "ht4": ht4,
        "regions": regions,
        "flavour": np.where(~same_flavour, 2, np.where(is_mu[:, 0], 1, 0)),
    }


def _histograms(names: list[str]) -> Output:
    weighted = hist.storage.Weight()
    flav = hist.axis.StrCategory(FLAVOURS, name="flavour")
    return {
        "yields": hist.Hist(
            hist.axis.StrCategory(names, name="variation"),
            hist.axis.StrCategory(REGIONS, name="region"),
            flav,
            storage=weighted,
        ),
        "mll": hist.Hist(
            hist.axis.Regular(50, 0, 250, name="mll", label=r"$m_{\ell\ell}$ [GeV]"),
            flav,
            storage=weighted,
        ),
        "mt2": hist.Hist(
            hist.axis.Regular(40, 0, 200, name="mt2", label=r"$m_{T2}$ [GeV]"),
            flav,
            storage=weighted,
        ),
        "met": hist.Hist(
            hist.axis.Regular(50, 0, 1000, name="met", label=r"$E_T^{miss}$ [GeV]"),
            storage=weighted,
        ),
        "n_jets": hist.Hist(
            hist.axis.Integer(0, 10, name="n_jets", label="jets"), storage=weighted
        ),
        "lead_jet_pt": hist.Hist(
            hist.axis.Regular(50, 0, 1000, name="pt", label="leading jet $p_T$ [GeV]"),
            storage=weighted,
        ),
    }


def _compiled_variations(view, numbered: list[tuple[int, Variation]], c: dict, nominal: dict):
    """Add the yields of every variation but the nominal, all in one pass over the events."""
    vs = [v for _, v in numbered]
    # As kinematics.four_vector computes them from each lepton's eta (column by column).
    sinh = np.stack([np.sinh(c["l_eta"][:, i]) for i in (0, 1)], axis=1)
    cosh = np.stack([np.cosh(c["l_eta"][:, i]) for i in (0, 1)], axis=1)
    value, variance, cand_var, cand_event, known, cand = variations_pass(
        np.array([KINDS[v.kind] for v in vs]),
        np.array([v.sign for v in vs]),
        np.array([v.index for v in vs]),
        np.array([jes_amplitude(v.index) for v in vs]),
        np.array([jes_power(v.index) for v in vs], dtype=np.float64),
        np.array([jer_width(v.index) for v in vs]),
        c["l_pt"],
        c["l_cos"],
        c["l_sin"],
        sinh,
        cosh,
        c["l_mass"],
        c["l_is_mu"],
        *(c[k] for k in ("j_pt", "j_eta", "j_cos", "j_sin", "j_valid", "j_central", "j_btag")),
        *(c[k] for k in ("event", "genWeight", "puWeight", "puWeightUp", "puWeightDown")),
        c["LHEScaleWeight"],
        c["met_x"],
        c["met_y"],
        np.stack([nominal["regions"][r] for r in REGIONS], axis=1),
        *(nominal[k] for k in ("mll", "presel", "flavour", "weight", "ht4", "lead_jet", "n_b")),
        nominal["mt2"],
    )
    # SR-mt2: MT2 of the candidates in one call, the leptons in falling pT order (a lepton
    # energy scale may swap them; evaluate took their masses unsorted), then the passing
    # candidates' weights summed in event order.
    todo = np.flatnonzero(~known)
    rows = cand_event[todo]
    swapped = cand[todo, 5] != 0
    phi = c["l_phi"][rows]
    phi[swapped] = phi[swapped, ::-1]
    passed = known.copy()
    passed[todo] = (
        _mt2(cand[todo, 3:5], phi, c["l_mass"][rows], cand[todo, 1], cand[todo, 2]) > MT2_CUT
    )
    key = cand_var[passed] * len(FLAVOURS) + nominal["flavour"][cand_event[passed]]
    w = cand[passed, 0]
    region = REGIONS.index("SR-mt2")
    for target, weights in ((value, w), (variance, w * w)):
        target[:, region] += np.bincount(
            key, weights=weights, minlength=target[:, region].size
        ).reshape(len(vs), len(FLAVOURS))
    index = [i for i, _ in numbered]
    view.value[index] += value
    view.variance[index] += variance


def process(events: ak.Array, n_variations: int = 20) -> ChunkResult:
    vs = variations(n_variations)
    out = _histograms([v.name for v in vs])
    cols = preselect(events)
    view = out["yields"].view()
    nominal = evaluate(vs[0], cols)
    for j, mask in enumerate(nominal["regions"].values()):
        w, flav = nominal["weight"][mask], nominal["flavour"][mask]
        view.value[0, j] += np.bincount(flav, weights=w, minlength=len(FLAVOURS))
        view.variance[0, j] += np.bincount(flav, weights=w * w, minlength=len(FLAVOURS))
    if len(vs) > 1:
        _compiled_variations(view, list(enumerate(vs))[1:], cols, nominal)
    p = nominal["presel"]
    w, flav = nominal["weight"][p], np.asarray(FLAVOURS)[nominal["flavour"][p]]
    out["mll"].fill(nominal["mll"][p], flav, weight=w)
    out["mt2"].fill(nominal["mt2"][p], flav, weight=w)
    out["met"].fill(nominal["met"][p], weight=w)
    out["n_jets"].fill(nominal["n_jets"][p], weight=w)
    out["lead_jet_pt"].fill(nominal["lead_jet"][p], weight=w)
    out["cutflow"] = {
        "events": len(events),
        "two_os_leptons": len(cols["event"]),
        "preselected": int(p.sum()),
    }
    snapshot = ak.zip(
        {
            "event": cols["event"][p],
            "mll": nominal["mll"][p],
            "mt2": nominal["mt2"][p],
            "met": nominal["met"][p],
            "weight": nominal["weight"][p],
        }
    )
    return out, snapshot


def summarize(output: Output, params: Mapping) -> dict:
    yields = output["yields"]
    names = list(yields.axes["variation"])
    values = yields.values().sum(axis=2)  # variation x region
    nominal = values[0]
    summary = {"cutflow": output["cutflow"], "variations": len(names), "signal_regions": {}}
    for r, region in enumerate(REGIONS):
        shifts = values[:, r] - nominal[r]
        worst = int(np.argmax(np.abs(shifts)))
        summary["signal_regions"][region] = {
            "nominal": float(nominal[r]),
            "stat_error": float(np.sqrt(yields.variances()[0, r].sum())),
            "largest_variation": names[worst],
            "largest_shift": float(shifts[worst]),
            "by_flavour": dict(zip(FLAVOURS, map(float, yields.values()[0, r]), strict=True)),
        }
    return summary


def headline(summary: dict) -> list[str]:
    lines = [f"{summary['variations']} variation(s); cut flow {summary['cutflow']}"]
    for region, r in summary["signal_regions"].items():
        lines.append(
            f"{region}: {r['nominal']:.2f} ± {r['stat_error']:.2f} (stat); "
            f"largest shift {r['largest_shift']:+.2f} from {r['largest_variation']}"
        )
    return lines


ANALYSIS = Analysis(
    name="stop",
    title="ATLAS stop two-lepton four-body search with systematic variations",
    branches=BRANCHES,
    process=process,
    summarize=summarize,
    figures="stop_plots",
    headline=headline,
    defaults={"n_variations": 20},
)
