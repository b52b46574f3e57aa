"""DT's tag-probe pairs: masses from the fast pz and E, redone with numpy's where the margin
could move one across the mass window or a bin edge. The analysis gives the columnar code's
histograms and chambers (tests/previous_kernels.py) with the margin and with every pair
redone, on generated chunks, on pairs moved onto the edges of the mass bins, and with NaN,
infinite or overflowing muon values."""

from __future__ import annotations

import functools

import awkward as ak
import hist
import numpy as np
import pytest

import tests.previous_kernels as previous
from analysis_kernels.analyses import dt_tnp
from analysis_kernels.kernels import dt
from analysis_kernels.kernels.combinatorics import MARGIN
from tests.test_kernels import assert_same_output, chunks

MARGINS = [MARGIN, np.float32(np.inf)]


@pytest.fixture(scope="module")
def events(datasets) -> ak.Array:
    return next(chunks(datasets["dt"], "dt", size=30_000))


def _assert_as_the_columnar_code(monkeypatch, events: ak.Array, margin) -> None:
    monkeypatch.setattr(
        dt_tnp, "tag_probe_pairs", functools.partial(dt.tag_probe_pairs, margin=margin)
    )
    (out, snap), (their_out, their_snap) = dt_tnp.process(events), previous.dt_process(events)
    assert_same_output(out, their_out)
    assert ak.to_list(snap) == ak.to_list(their_snap)


def _with_muons(events: ak.Array, **flat: np.ndarray) -> ak.Array:
    """``events`` with the given Muon_ fields replaced by flat arrays (same counts)."""
    count = ak.num(events["Muon_pt"])
    fields = {f: events[f] for f in events.fields}
    fields |= {f"Muon_{k}": ak.unflatten(v, count) for k, v in flat.items()}
    return ak.zip(fields, depth_limit=1)


def _mass64(pt, eta, phi, a, b) -> np.ndarray:
    """The float64 mass of muons a and b."""
    p, x, f = (v.astype(np.float64) for v in (pt, eta, phi))
    m2 = dt_tnp.MUON_MASS**2
    e = np.sqrt((p * np.cosh(x)) ** 2 + m2)
    px, py, pz = p * np.cos(f), p * np.sin(f), p * np.sinh(x)
    return np.sqrt(
        (e[a] + e[b]) ** 2 - (px[a] + px[b]) ** 2 - (py[a] + py[b]) ** 2 - (pz[a] + pz[b]) ** 2
    )


def _on_edges(events: ak.Array, edges: np.ndarray) -> ak.Array:
    """Each event's second muon scaled in pT so that its pair with the first has a mass on
    one of ``edges`` (each in turn), to float32 precision."""
    offsets = np.asarray(events.layout.content("Muon_pt").offsets)
    pt, eta, phi = (
        ak.to_numpy(ak.flatten(events[f"Muon_{f}"])).copy() for f in ["pt", "eta", "phi"]
    )
    first = offsets[:-1][np.diff(offsets) >= 2]
    target = edges[np.arange(len(first)) % len(edges)]
    for _ in range(4):  # m^2 is nearly proportional to the pT of one muon
        scale = (target / _mass64(pt, eta, phi, first, first + 1)) ** 2
        pt[first + 1] = (pt[first + 1] * scale).astype(np.float32)
    return _with_muons(events, pt=pt)


@pytest.mark.parametrize("margin", MARGINS)
def test_pairs_equal_the_columnar_code_with_any_margin(events, monkeypatch, margin):
    """With the margin (few pairs redone) and with an infinite one (every pair redone)."""
    _assert_as_the_columnar_code(monkeypatch, events, margin)


@pytest.mark.parametrize("margin", MARGINS)
def test_masses_on_the_bin_edges_fall_in_the_columnar_codes_bins(events, monkeypatch, margin):
    """Hundreds of selected pairs within a thousandth of a GeV of a bin edge, closer than the
    fast masses are to numpy's: each lands in numpy's bin."""
    _assert_near_edges_as_the_columnar_code(monkeypatch, events, dt_tnp.MASS_AXIS.edges, margin)


@pytest.mark.parametrize("margin", MARGINS)
def test_masses_on_the_window_edges_pass_as_in_the_columnar_code(events, monkeypatch, margin):
    """The same with the masses on the window's edges (float32: Z mass -+ 10 GeV), a mass
    histogram with no edge near them."""
    monkeypatch.setattr(dt_tnp, "MASS_AXIS", hist.axis.Regular(4, 0, 200, name="mass"))
    window = np.float32(dt_tnp.Z_MASS) + np.array([-1, 1], np.float32) * dt_tnp.MASS_WINDOW
    _assert_near_edges_as_the_columnar_code(monkeypatch, events, window.astype(float), margin)


def _assert_near_edges_as_the_columnar_code(monkeypatch, events, edges, margin) -> None:
    moved = _on_edges(events, edges)
    _, mass = previous._dt_probe_muons(moved)
    mass = ak.to_numpy(ak.flatten(mass)).astype(np.float64)
    near = np.abs(mass[:, None] - edges[None, :]).min(axis=1) < 1e-3
    assert near.sum() > 300
    _assert_as_the_columnar_code(monkeypatch, moved, margin)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's, on the bad values
@pytest.mark.parametrize("margin", MARGINS)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 1e30])
@pytest.mark.parametrize("field", ["pt", "eta", "phi"])
def test_one_bad_muon_value_per_event_gives_the_columnar_results(
    events, monkeypatch, field, value, margin
):
    """NaN, infinite or overflowing pt, eta or phi in the second muon of every other event."""
    offsets = np.asarray(events.layout.content("Muon_pt").offsets)
    flat = ak.to_numpy(ak.flatten(events[f"Muon_{field}"])).copy()
    first = offsets[:-1][np.diff(offsets) >= 2]
    flat[first[::2] + 1] = value
    _assert_as_the_columnar_code(monkeypatch, _with_muons(events, **{field: flat}), margin)
