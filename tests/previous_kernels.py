"""The columnar (awkward and numpy) code the compiled kernels replaced, kept as their reference.

The kernels must give the same histograms as this code, bin for bin; the tests run both on
the same generated chunks.
"""

from __future__ import annotations

import awkward as ak
import hist
import numpy as np

from analysis_kernels.analyses.adl import AXES
from analysis_kernels.analyses.base import ChunkResult, Output
from analysis_kernels.analyses.ds_phipi import FLAVOURS, MASS_AXIS, MASS_WINDOW
from analysis_kernels.analyses.dt_tnp import (
    FIDUCIAL_MARGIN,
    ISO_MUON_FILTER,
    MATCH_WINDOW,
    MUON_MASS,
    Z_MASS,
    _histograms,
)
from analysis_kernels.columns import padded
from analysis_kernels.kinematics import delta_phi, delta_r, four_vector, invariant_mass, system_mass
from analysis_kernels.schema import collection

P4_FIELDS = ["pt", "eta", "phi", "mass"]


def _h(axis: str) -> hist.Hist:
    return hist.Hist(AXES[axis])


def ds_match(candidate_pt: ak.Array, collection_pt: ak.Array) -> tuple[ak.Array, ak.Array]:
    """Index of each candidate's object in a collection, found by exact pT, and whether found.

    Compares each candidate with its event's objects in a padded (candidates x objects) table.
    """
    counts = ak.num(candidate_pt)
    width = max(1, int(ak.max(ak.num(collection_pt), initial=0)))
    table = padded(collection_pt, width, np.nan)
    event = np.repeat(np.arange(len(counts)), ak.to_numpy(counts))
    same = table[event] == ak.to_numpy(ak.flatten(candidate_pt))[:, None]
    return ak.unflatten(np.argmax(same, axis=1), counts), ak.unflatten(same.any(axis=1), counts)


def ds_select(
    events: ak.Array, fd_significance_min: float = 2.0
) -> tuple[ak.Array, ak.Array, ak.Array, dict]:
    """Per-candidate pass flags, the best candidate's index per event, and the cut flow."""
    kinematic = (
        (events.Triplet2_Mass > MASS_WINDOW[0])
        & (events.Triplet2_Mass < MASS_WINDOW[1])
        & (events.RefittedPV2_NTracks > 1)
        & (events.FlightDistBS_SV_Significance > fd_significance_min)
    )
    good_muon = events.Muon_isGlobal & events.Muon_isPF
    good_track = (abs(events.Track_dz) < 20) & (abs(events.Track_dxy) < 0.3)
    i1, f1 = ds_match(events.Mu01_Pt, events.Muon_pt)
    i2, f2 = ds_match(events.Mu02_Pt, events.Muon_pt)
    it, ft = ds_match(events.Tr_Pt, events.Track_pt)
    quality = f1 & f2 & ft & good_muon[i1] & good_muon[i2] & good_track[it]
    passed = kinematic & quality
    chi2 = ak.where(passed, events.TripletVtx2_Chi2, np.inf)
    best = ak.argmin(chi2, axis=1, keepdims=True)
    has_best = ak.any(passed, axis=1)
    cutflow = {
        "events": len(events),
        "kinematic": int(ak.sum(ak.any(kinematic, axis=1))),
        "muon_id_track_ip": int(ak.sum(has_best)),
    }
    return passed, best, has_best, cutflow


def ds_process(
    events: ak.Array, mc_truth: bool = False, fd_significance_min: float = 2.0
) -> ChunkResult:
    _, best, has_best, cutflow = ds_select(events, fd_significance_min)
    chosen = events[has_best]
    best = best[has_best]
    mass = ak.drop_none(ak.flatten(chosen.Triplet2_Mass[best]))
    out: Output = {"mass": hist.Hist(MASS_AXIS).fill(mass), "cutflow": cutflow}
    if mc_truth:
        flav = ak.drop_none(ak.flatten(chosen.Triplet2_genFlav[best]))
        out["mass_by_truth"] = hist.Hist(
            MASS_AXIS, hist.axis.IntCategory(list(FLAVOURS), name="flavour")
        ).fill(mass, flav)
    snapshot = ak.zip({"run": chosen.run, "event": chosen.event, "BestTriplet_mass": mass})
    return out, snapshot


def adl_q5(ev: ak.Array) -> ChunkResult:
    mu = collection(ev, "Muon", [*P4_FIELDS, "charge"])
    a, b = ak.unzip(ak.combinations(mu, 2))
    m = invariant_mass(a.pt, a.eta, a.phi, a.mass, b.pt, b.eta, b.phi, b.mass)
    good = ak.any((a.charge != b.charge) & (m > 60) & (m < 120), axis=1)
    return {"met": _h("met").fill(ev.MET_pt[good])}, None


def adl_q6(ev: ak.Array) -> ChunkResult:
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


def adl_q7(ev: ak.Array) -> ChunkResult:
    leptons = _leptons(ev)
    leptons = leptons[leptons.pt > 10]
    jets = collection(ev, "Jet", ["pt", "eta", "phi"])
    jets = jets[jets.pt > 30]
    j, lep = ak.unzip(ak.cartesian([jets, leptons], nested=True))
    isolated = ~ak.any(delta_r(j.eta, j.phi, lep.eta, lep.phi) < 0.4, axis=2)
    return {"ht": _h("ht").fill(ak.sum(jets.pt[isolated], axis=1))}, None


def adl_q8(ev: ak.Array) -> ChunkResult:
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


def _dt_probe_muons(ev: ak.Array) -> tuple[ak.Array, ak.Array]:
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


def dt_probes(ev: ak.Array) -> tuple[ak.Array, ak.Array]:
    """Chamber probes (extrapolations under study) with their pass flag, and T&P masses."""
    probe_idx, mass = _dt_probe_muons(ev)
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


def dt_process(events: ak.Array) -> ChunkResult:
    chambers, mass = dt_probes(events)
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
