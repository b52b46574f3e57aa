"""The IRIS-HEP ADL benchmark queries Q1-Q8 (iris-hep/adl-benchmarks-index), as columnar code.

Q1 MET of all events. Q2 pT of all jets. Q3 pT of jets with |eta| < 1. Q4 MET of events with
at least two jets above 40 GeV. Q5 MET of events with an opposite-charge muon pair of mass
60-120 GeV. Q6 for events with at least three jets, pT of the trijet with mass closest to
172.5 GeV and the largest b-tag among its jets. Q7 scalar sum of the pT of jets above 30 GeV
that are not within Delta R 0.4 of any lepton above 10 GeV. Q8 in events with at least three
leptons and a same-flavour opposite-charge pair, the transverse mass of MET and the leading
lepton outside the pair closest to the Z mass.
"""

from __future__ import annotations

from collections.abc import Mapping

import awkward as ak
import hist
import numpy as np

from analysis_kernels.analyses.base import Analysis, ChunkResult, Output
from analysis_kernels.kinematics import delta_phi, delta_r, four_vector, invariant_mass, system_mass
from analysis_kernels.schema import collection

F32, I32 = "var * float32", "var * int32"
JET = {f"Jet_{f}": F32 for f in ("pt", "eta", "phi", "mass")}
MUON = {f"Muon_{f}": F32 for f in ("pt", "eta", "phi", "mass")} | {"Muon_charge": I32}
ELECTRON = {f"Electron_{f}": F32 for f in ("pt", "eta", "phi", "mass")} | {"Electron_charge": I32}
MET = {"MET_pt": "float32"}
P4_FIELDS = ["pt", "eta", "phi", "mass"]

AXES = {
    "met": hist.axis.Regular(100, 0, 200, name="met", label=r"$E_T^{miss}$ [GeV]"),
    "jet_pt": hist.axis.Regular(100, 15, 60, name="pt", label="jet $p_T$ [GeV]"),
    "trijet_pt": hist.axis.Regular(100, 0, 250, name="pt", label="trijet $p_T$ [GeV]"),
    "btag": hist.axis.Regular(100, 0, 1, name="btag", label="max b-tag"),
    "ht": hist.axis.Regular(100, 15, 200, name="ht", label=r"$\sum p_T$ [GeV]"),
    "mt": hist.axis.Regular(100, 15, 250, name="mt", label="$m_T$ [GeV]"),
}


def _h(axis: str) -> hist.Hist:
    return hist.Hist(AXES[axis])


def q1(ev: ak.Array) -> ChunkResult:
    return {"met": _h("met").fill(ev.MET_pt)}, None


def q2(ev: ak.Array) -> ChunkResult:
    return {"jet_pt": _h("jet_pt").fill(ak.flatten(ev.Jet_pt))}, None


def q3(ev: ak.Array) -> ChunkResult:
    return {"jet_pt": _h("jet_pt").fill(ak.flatten(ev.Jet_pt[abs(ev.Jet_eta) < 1]))}, None


def q4(ev: ak.Array) -> ChunkResult:
    return {"met": _h("met").fill(ev.MET_pt[ak.sum(ev.Jet_pt > 40, axis=1) >= 2])}, None


def q5(ev: ak.Array) -> ChunkResult:
    mu = collection(ev, "Muon", [*P4_FIELDS, "charge"])
    a, b = ak.unzip(ak.combinations(mu, 2))
    m = invariant_mass(a.pt, a.eta, a.phi, a.mass, b.pt, b.eta, b.phi, b.mass)
    good = ak.any((a.charge != b.charge) & (m > 60) & (m < 120), axis=1)
    return {"met": _h("met").fill(ev.MET_pt[good])}, None


def q6(ev: ak.Array) -> ChunkResult:
    jets = collection(ev, "Jet", [*P4_FIELDS, "btag"])
    jets = jets[ak.num(jets) >= 3]
    j1, j2, j3 = ak.unzip(ak.combinations(jets, 3))
    p1, p2, p3 = (four_vector(j.pt, j.eta, j.phi, j.mass) for j in (j1, j2, j3))
    best = ak.argmin(abs(system_mass(p1, p2, p3) - 172.5), axis=1, keepdims=True)
    px, py = p1[0] + p2[0] + p3[0], p1[1] + p2[1] + p3[1]
    pt = ak.flatten(np.hypot(px, py)[best])
    btag = ak.flatten(np.maximum(np.maximum(j1.btag, j2.btag), j3.btag)[best])
    return {"trijet_pt": _h("trijet_pt").fill(pt), "trijet_btag": _h("btag").fill(btag)}, None


def _leptons(ev: ak.Array) -> ak.Array:
    """Muons and electrons in one collection, with their flavour (13 or 11)."""
    parts = []
    for name, flavour in (("Muon", 13), ("Electron", 11)):
        leptons = collection(ev, name, [*P4_FIELDS, "charge"])
        parts.append(
            ak.with_field(
                leptons, ak.values_astype(leptons.charge * 0 + flavour, np.int32), "flavour"
            )
        )
    return ak.concatenate(parts, axis=1)


def q7(ev: ak.Array) -> ChunkResult:
    leptons = _leptons(ev)
    leptons = leptons[leptons.pt > 10]
    jets = collection(ev, "Jet", ["pt", "eta", "phi"])
    jets = jets[jets.pt > 30]
    j, lep = ak.unzip(ak.cartesian([jets, leptons], nested=True))
    isolated = ~ak.any(delta_r(j.eta, j.phi, lep.eta, lep.phi) < 0.4, axis=2)
    return {"ht": _h("ht").fill(ak.sum(jets.pt[isolated], axis=1))}, None


def q8(ev: ak.Array) -> ChunkResult:
    leptons = _leptons(ev)
    leptons = ak.zip({**{f: leptons[f] for f in leptons.fields}, "idx": ak.local_index(leptons)})
    ev, leptons = ev[ak.num(leptons) >= 3], leptons[ak.num(leptons) >= 3]
    a, b = ak.unzip(ak.combinations(leptons, 2))
    sfos = (a.flavour == b.flavour) & (a.charge != b.charge)
    m = invariant_mass(a.pt, a.eta, a.phi, a.mass, b.pt, b.eta, b.phi, b.mass)
    distance = ak.where(sfos, abs(m - 91.2), np.inf)
    has_pair = ak.any(sfos, axis=1)
    best = ak.argmin(distance, axis=1, keepdims=True)
    ia, ib = ak.flatten(a.idx[best]), ak.flatten(b.idx[best])
    others = leptons[(leptons.idx != ia) & (leptons.idx != ib)]
    lead = ak.flatten(others[ak.argmax(others.pt, axis=1, keepdims=True)])
    met, lead = ev[has_pair], lead[has_pair]
    mt = np.sqrt(2 * lead.pt * met.MET_pt * (1 - np.cos(delta_phi(lead.phi, met.MET_phi))))
    return {"mt": _h("mt").fill(mt)}, None


QUERIES = {
    "q1": (q1, MET),
    "q2": (q2, {"Jet_pt": F32}),
    "q3": (q3, {"Jet_pt": F32, "Jet_eta": F32}),
    "q4": (q4, MET | {"Jet_pt": F32}),
    "q5": (q5, MET | MUON),
    "q6": (q6, JET | {"Jet_btag": F32}),
    "q7": (q7, {"Jet_pt": F32, "Jet_eta": F32, "Jet_phi": F32} | MUON | ELECTRON),
    "q8": (q8, MET | {"MET_phi": "float32"} | MUON | ELECTRON),
}


def _summarize(output: Output, params: Mapping) -> dict:
    return {
        name: {
            "entries": float(h.sum(flow=True)),
            "mean": float(np.average(h.axes[0].centers, weights=h.values()))
            if h.values().sum()
            else None,
        }
        for name, h in output.items()
    }


def _headline(summary: dict) -> list[str]:
    return [f"{name}: {s['entries']:.0f} entries, mean {s['mean']}" for name, s in summary.items()]


ANALYSES = [
    Analysis(
        name=f"adl_{q}",
        title=f"IRIS-HEP ADL benchmark {q.upper()}",
        branches=branches,
        process=fn,
        summarize=_summarize,
        figures="simple_histograms",
        headline=_headline,
        dataset="adl",
    )
    for q, (fn, branches) in QUERIES.items()
]
