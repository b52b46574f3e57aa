"""The IRIS-HEP ADL benchmark queries Q1-Q8 (iris-hep/adl-benchmarks-index), over columns.

Q1 MET of all events. Q2 pT of all jets. Q3 pT of jets with |eta| < 1. Q4 MET of events with
at least two jets above 40 GeV. Q5 MET of events with an opposite-charge muon pair of mass
60-120 GeV. Q6 for events with at least three jets, pT of the trijet with mass closest to
172.5 GeV and the largest b-tag among its jets. Q7 scalar sum of the pT of jets above 30 GeV
that are not within Delta R 0.4 of any lepton above 10 GeV. Q8 in events with at least three
leptons and a same-flavour opposite-charge pair, the transverse mass of MET and the leading
lepton outside the pair closest to the Z mass. The pair and triplet searches of Q5-Q8 run as
compiled loops (:mod:`analysis_kernels.kernels.combinatorics`). The queries work on the flat
values and offsets of the columns (numpy, no awkward dispatch), fill their histograms with
the compiled fill (:mod:`analysis_kernels.kernels.fill`, the same bins as ``hist``'s fill).
Four-vectors: px and py with numpy over all objects (vectorised, cheap); the kernels compute
pz and E (sinh and cosh, the dear part) only for the objects of events that can pass.
"""

from __future__ import annotations

from collections.abc import Mapping

import awkward as ak
import hist
import numpy as np

from analysis_kernels.analyses.base import (
    Analysis,
    ChunkResult,
    Output,
    clone,
    column,
    columns,
)
from analysis_kernels.kernels.combinatorics import (
    at_least_n_above,
    isolated_jet_sum,
    lead_outside_z_pair,
    opposite_pair_in_window,
    trijet_closest_to,
)
from analysis_kernels.kernels.fill import fill
from analysis_kernels.kinematics import delta_phi

F32, I32 = "var * float32", "var * int32"
JET = {f"Jet_{f}": F32 for f in ("pt", "eta", "phi", "mass")}
MUON = {f"Muon_{f}": F32 for f in ("pt", "eta", "phi", "mass")} | {"Muon_charge": I32}
ELECTRON = {f"Electron_{f}": F32 for f in ("pt", "eta", "phi", "mass")} | {"Electron_charge": I32}
MET = {"MET_pt": "float32"}

AXES = {
    "met": hist.axis.Regular(100, 0, 200, name="met", label=r"$E_T^{miss}$ [GeV]"),
    "jet_pt": hist.axis.Regular(100, 15, 60, name="pt", label="jet $p_T$ [GeV]"),
    "trijet_pt": hist.axis.Regular(100, 0, 250, name="pt", label="trijet $p_T$ [GeV]"),
    "btag": hist.axis.Regular(100, 0, 1, name="btag", label="max b-tag"),
    "ht": hist.axis.Regular(100, 15, 200, name="ht", label=r"$\sum p_T$ [GeV]"),
    "mt": hist.axis.Regular(100, 15, 250, name="mt", label="$m_T$ [GeV]"),
}


_EMPTY = {name: hist.Hist(axis) for name, axis in AXES.items()}


def _h(axis: str) -> hist.Hist:
    """A new empty histogram on ``AXES[axis]``, the same as ``hist.Hist(AXES[axis])``, as a
    copy of one made once (``hist.Hist`` takes 24 us, a fifth of Q1's fill of a chunk)."""
    return clone(_EMPTY[axis])


def q1(ev: ak.Array) -> ChunkResult:
    return {"met": fill(_h("met"), column(ev, "MET_pt"))}, None


def q2(ev: ak.Array) -> ChunkResult:
    return {"jet_pt": fill(_h("jet_pt"), columns(ev, "Jet", ["pt"])[1])}, None


def q3(ev: ak.Array) -> ChunkResult:
    _, pt, eta = columns(ev, "Jet", ["pt", "eta"])
    return {"jet_pt": fill(_h("jet_pt"), pt, where=np.abs(eta) < np.float32(1))}, None


def q4(ev: ak.Array) -> ChunkResult:
    offsets, pt = columns(ev, "Jet", ["pt"])
    two_jets = at_least_n_above(offsets, pt, np.float32(40), 2)
    return {"met": fill(_h("met"), column(ev, "MET_pt"), where=two_jets)}, None


def _kinematics(ev: ak.Array, name: str, extra: list[str]) -> tuple[np.ndarray, ...]:
    """Offsets, px, py, then pt, eta, mass and the ``extra`` fields of a collection, for the
    kernels (which compute pz and E where needed)."""
    offsets, pt, phi, eta, mass, *rest = columns(ev, name, ["pt", "phi", "eta", "mass", *extra])
    return offsets, pt * np.cos(phi), pt * np.sin(phi), pt, eta, mass, *rest


def q5(ev: ak.Array) -> ChunkResult:
    muons = _kinematics(ev, "Muon", ["charge"])
    good = opposite_pair_in_window(*muons, np.float32(60), np.float32(120))
    return {"met": fill(_h("met"), column(ev, "MET_pt"), where=good)}, None


def q6(ev: ak.Array) -> ChunkResult:
    px, py, btag = trijet_closest_to(*_kinematics(ev, "Jet", ["btag"]), np.float32(172.5))
    return {
        "trijet_pt": fill(_h("trijet_pt"), np.hypot(px, py)),
        "trijet_btag": fill(_h("btag"), btag),
    }, None


def q7(ev: ak.Array) -> ChunkResult:
    fields = ["pt", "eta", "phi"]
    ht = isolated_jet_sum(
        columns(ev, "Jet", fields),
        np.float32(30),
        columns(ev, "Muon", fields),
        columns(ev, "Electron", fields),
        np.float32(10),
        np.float32(0.4),
    )
    return {"ht": fill(_h("ht"), ht)}, None


def q8(ev: ak.Array) -> ChunkResult:
    muons, electrons = (_kinematics(ev, name, ["charge", "phi"]) for name in ("Muon", "Electron"))
    events, pt, phi = lead_outside_z_pair(muons, electrons, np.float32(91.2))
    met, met_phi = column(ev, "MET_pt")[events], column(ev, "MET_phi")[events]
    mt = np.sqrt(2 * pt * met * (1 - np.cos(delta_phi(phi, met_phi))))
    return {"mt": fill(_h("mt"), mt)}, None


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
