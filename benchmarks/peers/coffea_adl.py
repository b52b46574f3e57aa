"""The ADL benchmark queries in coffea, as the coffea-benchmarks notebook writes them.

NanoEvents in virtual mode, as coffea's users run it: a branch is read and decompressed
only when a query touches it (``access_log`` records which were).
"""

from __future__ import annotations

import warnings

import awkward as ak
import hist
import numpy as np

from analysis_kernels.analyses.adl import AXES


def events(path: str, access_log: list | None = None):
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the ADL schema lacks some NanoAOD cross-references
        return NanoEventsFactory.from_root(
            {path: "Events"},
            schemaclass=NanoAODSchema,
            mode="virtual",
            access_log=access_log,
        ).events()


def _fill(axis: str, values) -> hist.Hist:
    return hist.Hist(AXES[axis]).fill(ak.to_numpy(ak.flatten(values, axis=None)))


def q1(ev):
    return {"met": _fill("met", ev.MET.pt)}


def q2(ev):
    return {"jet_pt": _fill("jet_pt", ev.Jet.pt)}


def q3(ev):
    return {"jet_pt": _fill("jet_pt", ev.Jet.pt[abs(ev.Jet.eta) < 1])}


def q4(ev):
    return {"met": _fill("met", ev.MET.pt[ak.sum(ev.Jet.pt > 40, axis=1) >= 2])}


def q5(ev):
    pairs = ak.combinations(ev.Muon, 2, fields=["mu1", "mu2"])
    mass = (pairs.mu1 + pairs.mu2).mass
    good = ak.any((mass > 60) & (mass < 120) & (pairs.mu1.charge == -pairs.mu2.charge), axis=1)
    return {"met": _fill("met", ev.MET.pt[good])}


def q6(ev):
    jets = ev.Jet[ak.num(ev.Jet) >= 3]
    trijet = ak.combinations(jets, 3, fields=["j1", "j2", "j3"])
    trijet["p4"] = trijet.j1 + trijet.j2 + trijet.j3
    trijet["maxbtag"] = np.maximum(trijet.j1.btag, np.maximum(trijet.j2.btag, trijet.j3.btag))
    best = ak.flatten(trijet[ak.singletons(ak.argmin(abs(trijet.p4.mass - 172.5), axis=1))])
    return {"trijet_pt": _fill("trijet_pt", best.p4.pt), "trijet_btag": _fill("btag", best.maxbtag)}


def q7(ev):
    jets = ev.Jet[ev.Jet.pt > 30]
    clean = jets[
        ak.all(jets.metric_table(ev.Muon[ev.Muon.pt > 10]) >= 0.4, axis=2)
        & ak.all(jets.metric_table(ev.Electron[ev.Electron.pt > 10]) >= 0.4, axis=2)
    ]
    return {"ht": _fill("ht", ak.sum(clean.pt, axis=1))}


def q8(ev):
    ev["Electron", "flavor"] = ak.full_like(ev.Electron.charge, 11)
    ev["Muon", "flavor"] = ak.full_like(ev.Muon.charge, 13)
    leptons = ak.with_name(ak.concatenate([ev.Muon, ev.Electron], axis=1), "PtEtaPhiMCandidate")
    ev = ev[ak.num(leptons) >= 3]
    leptons = leptons[ak.num(leptons) >= 3]
    pairs = ak.argcombinations(leptons, 2, fields=["l1", "l2"])
    l1, l2 = leptons[pairs.l1], leptons[pairs.l2]
    sfos = (l1.flavor == l2.flavor) & (l1.charge != l2.charge)
    pairs, mass = pairs[sfos], (l1 + l2).mass[sfos]
    has_pair = ak.num(pairs) > 0
    best = ak.firsts(pairs[ak.singletons(ak.argmin(abs(mass - 91.2), axis=1))])
    index = ak.local_index(leptons)
    others = leptons[(index != best.l1) & (index != best.l2)]
    lead = ak.firsts(others[ak.singletons(ak.argmax(others.pt, axis=1))])
    lead, met = lead[has_pair], ev.MET[has_pair]
    mt = np.sqrt(2 * lead.pt * met.pt * (1 - np.cos(met.delta_phi(lead))))
    return {"mt": _fill("mt", mt)}


QUERIES = {f"q{i}": fn for i, fn in enumerate((q1, q2, q3, q4, q5, q6, q7, q8), start=1)}


def adl(query: str, files: list[str], access_log: list | None = None) -> dict:
    """One query over the files, histograms merged in file order."""
    out: dict = {}
    for path in files:
        part = QUERIES[query](events(str(path), access_log))
        out = {k: out[k] + v for k, v in part.items()} if out else part
    return out
