"""CMS Ds+ -> phi(mu mu) pi+ normalisation channel, as in the seed's RDataFrame notebook.

Selections, in the seed's order: candidate mass in (1.62, 2.02) GeV, more than one track
from the refitted PV, flight-distance significance above 2; the candidate's muons and track
found in ``Muon_``/``Track_`` by their pT, muons global and PF, track |dz| < 20 cm and
|dxy| < 0.3 cm; the best passing candidate by vertex chi2 (all in one compiled pass,
:mod:`analysis_kernels.kernels.ds`); its mass in 62 bins from 1.70 to
2.05 GeV, fitted for the D+ and Ds peaks over a falling background.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import awkward as ak
import hist
import numpy as np

from analysis_kernels.analyses.base import Analysis, ChunkResult, Output
from analysis_kernels.columns import jagged
from analysis_kernels.fit import fit_ds_dplus
from analysis_kernels.kernels.ds import best_candidates

F32, I32, B = "var * float32", "var * int32", "var * bool"
BRANCHES = {
    "run": "uint32",
    "event": "uint64",
    "Triplet2_Mass": F32,
    "TripletVtx2_Chi2": F32,
    "RefittedPV2_NTracks": I32,
    "FlightDistBS_SV_Significance": F32,
    "Mu01_Pt": F32,
    "Mu02_Pt": F32,
    "Tr_Pt": F32,
    "Muon_pt": F32,
    "Muon_isGlobal": B,
    "Muon_isPF": B,
    "Track_pt": F32,
    "Track_dz": F32,
    "Track_dxy": F32,
}
TRUTH_BRANCHES = {"Triplet2_genFlav": I32}
# Per-candidate inputs of the kernel, in its argument order after the mass.
CANDIDATE_BRANCHES = [
    "RefittedPV2_NTracks",
    "FlightDistBS_SV_Significance",
    "TripletVtx2_Chi2",
    "Mu01_Pt",
    "Mu02_Pt",
    "Tr_Pt",
]
MASS_WINDOW = (1.62, 2.02)  # GeV, the seed's candidate mass selection
MASS_AXIS = hist.axis.Regular(62, 1.70, 2.05, name="mass", label=r"$m(\mu\mu\pi)$ [GeV]")
FLAVOURS = {0: "combinatorial", 411: "Dplus", 431: "Ds"}


@dataclass(frozen=True)
class DsColumns:
    """One chunk as the compiled selection reads it: offsets and flat values (numpy).

    Made once per chunk by :func:`prepare`; the worker's column cache keeps this form, so a
    re-run after changing a cut goes straight to the kernel. Nothing in it depends on the
    analysis' parameters (the muon and track quality flags use fixed thresholds).
    """

    events: int
    offsets: np.ndarray  # of the candidates (Triplet2_*, and the other per-candidate columns)
    mass: np.ndarray
    candidate: tuple[np.ndarray, ...]  # CANDIDATE_BRANCHES, in the kernel's order
    muon_offsets: np.ndarray
    muon_pt: np.ndarray
    muon_good: np.ndarray
    track_offsets: np.ndarray
    track_pt: np.ndarray
    track_good: np.ndarray
    run: np.ndarray | None  # None: not read (the selection alone needs neither)
    event: np.ndarray | None
    flavour: np.ndarray | None = None  # Triplet2_genFlav, when read

    def __len__(self) -> int:
        return self.events

    @property
    def nbytes(self) -> int:
        arrays = [
            getattr(self, f.name) for f in fields(self) if f.name not in ("events", "candidate")
        ]
        return sum(a.nbytes for a in (*arrays, *self.candidate) if a is not None)


def prepare(events: ak.Array | DsColumns) -> DsColumns:
    """The chunk's columns in the form the selection reads (no copy of read columns).

    Thresholds are float32, as the stored values: the comparisons are those of the columnar
    code this replaced (numpy compares a float32 array with a Python float in float32).
    """
    if isinstance(events, DsColumns):
        return events
    names = set(events.fields)
    offsets, mass = jagged(events.Triplet2_Mass)
    muon_offsets, muon_pt = jagged(events.Muon_pt)
    track_offsets, track_pt = jagged(events.Track_pt)
    return DsColumns(
        events=len(events),
        offsets=offsets,
        mass=mass,
        candidate=tuple(jagged(events[b])[1] for b in CANDIDATE_BRANCHES),
        muon_offsets=muon_offsets,
        muon_pt=muon_pt,
        muon_good=jagged(events.Muon_isGlobal)[1] & jagged(events.Muon_isPF)[1],
        track_offsets=track_offsets,
        track_pt=track_pt,
        track_good=(np.abs(jagged(events.Track_dz)[1]) < np.float32(20))
        & (np.abs(jagged(events.Track_dxy)[1]) < np.float32(0.3)),
        run=ak.to_numpy(events.run) if "run" in names else None,
        event=ak.to_numpy(events.event) if "event" in names else None,
        flavour=jagged(events.Triplet2_genFlav)[1] if "Triplet2_genFlav" in names else None,
    )


def select(
    events: ak.Array | DsColumns, fd_significance_min: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Per-candidate pass flags (flat), the best passing candidate of each event (flat index,
    -1 if none), the candidates' offsets, and the cut flow.
    """
    c = prepare(events)
    passed, best, kinematic = best_candidates(
        c.offsets,
        c.mass,
        *c.candidate,
        c.muon_offsets,
        c.muon_pt,
        c.muon_good,
        c.track_offsets,
        c.track_pt,
        c.track_good,
        *np.asarray([*MASS_WINDOW, fd_significance_min], dtype=np.float32),
    )
    cutflow = {
        "events": c.events,
        "kinematic": int(kinematic.sum()),
        "muon_id_track_ip": int((best >= 0).sum()),
    }
    return passed, best, c.offsets, cutflow


def _records(columns: dict[str, np.ndarray], length: int) -> ak.Array:
    """``ak.zip`` of flat numpy columns, built directly (the same array, without its broadcasting)."""
    contents = [ak.contents.NumpyArray(v) for v in columns.values()]
    return ak.Array(ak.contents.RecordArray(contents, list(columns), length=length))


def process(
    events: ak.Array | DsColumns, mc_truth: bool = False, fd_significance_min: float = 2.0
) -> ChunkResult:
    columns = prepare(events)
    _, best, _, cutflow = select(columns, fd_significance_min)
    has_best = best >= 0
    chosen = best[has_best]
    mass = columns.mass[chosen]
    out: Output = {"mass": hist.Hist(MASS_AXIS).fill(mass), "cutflow": cutflow}
    if mc_truth:
        flav = columns.flavour[chosen]
        out["mass_by_truth"] = hist.Hist(
            MASS_AXIS, hist.axis.IntCategory(list(FLAVOURS), name="flavour")
        ).fill(mass, flav)
    snapshot = _records(
        {"run": columns.run[has_best], "event": columns.event[has_best], "BestTriplet_mass": mass},
        len(mass),
    )
    return out, snapshot


# What the worker's column cache keeps of a chunk (analysis_kernels.executor.task).
process.prepare = prepare


def summarize(output: Output, params: Mapping) -> dict:
    fit = fit_ds_dplus(output["mass"], upper=MASS_WINDOW[1])
    summary = {
        "cutflow": output["cutflow"],
        "candidates": int(output["mass"].sum(flow=True)),
        "fit": fit,
    }
    if "mass_by_truth" in output:
        h = output["mass_by_truth"]
        summary["truth_matched"] = {
            name: float(h[:, hist.loc(code)].sum()) for code, name in FLAVOURS.items()
        }
    return summary


def headline(summary: dict) -> list[str]:
    fit = summary["fit"]
    return [
        f"best candidates: {summary['candidates']} (cut flow {summary['cutflow']})",
        f"N(Ds) = {fit['n_ds']['value']:.0f} ± {fit['n_ds']['error']:.0f}, "
        f"N(D+) = {fit['n_dplus']['value']:.0f} ± {fit['n_dplus']['error']:.0f}, "
        f"m(Ds) = {1000 * fit['m_ds']['value']:.1f} MeV, fit {'converged' if fit['valid'] else 'FAILED'}",
    ]


ANALYSIS = Analysis(
    name="ds",
    title="CMS Ds -> phi(mu mu) pi normalisation channel",
    branches=BRANCHES,
    truth_branches=TRUTH_BRANCHES,
    process=process,
    summarize=summarize,
    figures="ds_plots",
    headline=headline,
    defaults={"mc_truth": False, "fd_significance_min": 2.0},
)
