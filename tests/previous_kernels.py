"""The columnar (awkward and numpy) code the compiled kernels replaced, kept as their reference.

The kernels must give the same histograms as this code, bin for bin; the tests run both on
the same generated chunks.
"""

from __future__ import annotations

import awkward as ak
import hist
import numpy as np
from mt2 import mt2

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
from analysis_kernels.analyses.stop_2l import (
    FLAVOURS as STOP_FLAVOURS,
)
from analysis_kernels.analyses.stop_2l import (
    JET_PT,
    MT2_CUT,
    _mt,
    _sum_leading,
    preselect,
    weight,
)
from analysis_kernels.analyses.stop_2l import _histograms as _stop_histograms
from analysis_kernels.analyses.systematics import (
    Variation,
    jer_width,
    jes_amplitude,
    jes_power,
    variations,
)
from analysis_kernels.columns import padded
from analysis_kernels.kinematics import (
    delta_phi,
    delta_r,
    four_vector,
    hash_normal,
    invariant_mass,
    system_mass,
)
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


def jes_shift(k: int, abs_eta):
    return jes_amplitude(k) * (1.0 + (abs_eta / 2.8) ** jes_power(k))


WEIGHT_ONLY = frozenset({"pu", "scale", "lepsf", "btag"})


def _stop_shifted(v: Variation, c: dict) -> tuple[np.ndarray, np.ndarray]:
    """Lepton and jet pT under a scale or smearing variation."""
    l_pt, j_pt = c["l_pt"], c["j_pt"]
    if v.kind == "jes":
        j_pt = j_pt * (1 + v.sign * jes_shift(v.index, np.abs(c["j_eta"])))
    elif v.kind == "jer":
        jet_index = np.arange(j_pt.shape[1], dtype=np.uint64)[None, :]
        smear = hash_normal(c["event"][:, None], jet_index, np.uint64(1000 + v.index))
        j_pt = j_pt * np.maximum(1 + jer_width(v.index) * smear, 0)
    elif v.kind in ("ees", "mes"):
        scale = 0.01 if v.kind == "ees" else 0.005
        flavour = c["l_is_mu"] if v.kind == "mes" else ~c["l_is_mu"]
        l_pt = l_pt * np.where(flavour, 1 + v.sign * scale, 1.0)
    return l_pt, j_pt


def _stop_mt2(
    c: dict, l_pt: np.ndarray, l_phi: np.ndarray, met_x, met_y, where: np.ndarray
) -> np.ndarray:
    """MT2 with massless invisible particles, computed only where asked (0 elsewhere)."""
    out = np.zeros(len(where))
    idx = np.flatnonzero(where)
    if idx.size:
        px, py = l_pt[idx] * np.cos(l_phi[idx]), l_pt[idx] * np.sin(l_phi[idx])
        m = c["l_mass"][idx]
        out[idx] = mt2(
            m[:, 0],
            px[:, 0],
            py[:, 0],
            m[:, 1],
            px[:, 1],
            py[:, 1],
            met_x[idx],
            met_y[idx],
            0.0,
            0.0,
        )
    return out


def stop_evaluate(v: Variation, c: dict, nominal: dict | None = None) -> dict[str, np.ndarray]:
    """Key variables and region flags of the preselected events under one variation.

    Weight-only variations reuse the nominal kinematics; MT2, the costly variable, is
    computed only for events that pass every other cut of the region that uses it.
    """
    if nominal is not None and v.kind in WEIGHT_ONLY:
        return {**nominal, "weight": weight(v, c, c["l_pt"], c["j_pt"])}
    l_pt, j_pt = _stop_shifted(v, c)
    dj, dl = (j_pt - c["j_pt"]) * c["j_valid"], l_pt - c["l_pt"]
    met_x = c["met_x"] - (dj * c["j_cos"]).sum(1) - (dl * c["l_cos"]).sum(1)
    met_y = c["met_y"] - (dj * c["j_sin"]).sum(1) - (dl * c["l_sin"]).sum(1)
    eta, phi, mass, is_mu = c["l_eta"], c["l_phi"], c["l_mass"], c["l_is_mu"]
    if v.kind in ("ees", "mes"):  # the leading lepton may change
        order = np.argsort(-l_pt, axis=1)
        l_pt, eta, phi, is_mu = (
            np.take_along_axis(a, order, axis=1) for a in (l_pt, eta, phi, is_mu)
        )
    met = np.hypot(met_x, met_y)
    if nominal is not None and v.kind in ("jes", "jer"):  # leptons untouched
        mll = nominal["mll"]
    else:
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
    mt2_val = _stop_mt2(
        c,
        l_pt,
        phi,
        met_x,
        met_y,
        presel if v.kind == "nominal" else mt2_candidates & (bound > MT2_CUT),
    )
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
        "lead_jet": lead_jet,
        "regions": regions,
        "flavour": np.where(~same_flavour, 2, np.where(is_mu[:, 0], 1, 0)),
    }


def stop_process(events: ak.Array, n_variations: int = 20) -> ChunkResult:
    vs = variations(n_variations)
    out = _stop_histograms([v.name for v in vs])
    cols = preselect(events)
    flavour_names = np.asarray(STOP_FLAVOURS)
    nominal = None
    view = out["yields"].view()
    for i, v in enumerate(vs):
        r = stop_evaluate(v, cols, nominal)
        for j, mask in enumerate(r["regions"].values()):
            w, flav = r["weight"][mask], r["flavour"][mask]
            view.value[i, j] += np.bincount(flav, weights=w, minlength=len(STOP_FLAVOURS))
            view.variance[i, j] += np.bincount(flav, weights=w * w, minlength=len(STOP_FLAVOURS))
        if v.kind == "nominal":
            nominal = r
            p, w, flav = (
                r["presel"],
                r["weight"][r["presel"]],
                flavour_names[r["flavour"][r["presel"]]],
            )
            out["mll"].fill(r["mll"][p], flav, weight=w)
            out["mt2"].fill(r["mt2"][p], flav, weight=w)
            out["met"].fill(r["met"][p], weight=w)
            out["n_jets"].fill(r["n_jets"][p], weight=w)
            out["lead_jet_pt"].fill(r["lead_jet"][p], weight=w)
    out["cutflow"] = {
        "events": len(events),
        "two_os_leptons": len(cols["event"]),
        "preselected": int(nominal["presel"].sum()),
    }
    p = nominal["presel"]
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
