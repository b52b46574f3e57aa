"""The four-vectors of the ADL pair and triplet searches (Q5, Q6, Q8): the fast pz and E, the
margin within which a search goes back to numpy's, and the histograms either way, on the
generated data and the real NanoAOD file; and the candidates and histograms with a NaN,
infinite or overflowing value in single objects, or an m^2 rounded below 0."""

from __future__ import annotations

import functools

import awkward as ak
import numpy as np
import pytest
import uproot

import tests.previous_kernels as previous
from analysis_kernels import get_analysis
from analysis_kernels.analyses import adl
from analysis_kernels.analyses.base import columns
from analysis_kernels.executor.chunks import expand_inputs
from analysis_kernels.kernels import combinatorics as C
from analysis_kernels.kinematics import delta_phi, four_vector
from analysis_kernels.schema import read_chunk
from tests.test_kernels import adl_files  # noqa: F401 (the fixture)

QUERIES = {"q5": "opposite_pair_in_window", "q6": "trijet_closest_to", "q8": "lead_outside_z_pair"}


def _nanoaod(path) -> ak.Array:
    """The real file's events with the branches of Q5, Q6 and Q8, its CSV b-tag as Jet_btag."""
    names = {n for q in QUERIES for n in get_analysis(f"adl_{q}").branches} - {"Jet_btag"}
    arrays = uproot.open(path)["Events"].arrays([*sorted(names), "Jet_btagCSVV2"])
    fields = {n: arrays[n] for n in sorted(names)} | {"Jet_btag": arrays["Jet_btagCSVV2"]}
    return ak.zip(fields, depth_limit=1)


@pytest.fixture(scope="module")
def samples(adl_files, real_nanoaod) -> list[ak.Array]:  # noqa: F811 (the fixture)
    branches = {}
    for q in QUERIES:
        branches |= get_analysis(f"adl_{q}").branches
    (path,) = expand_inputs(adl_files)
    return [read_chunk(path, branches, 0, 100_000)[0], _nanoaod(real_nanoaod)]


def _both_ways(events: ak.Array, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(objects, 4) px, py, pz, E of a collection, fast and as the searches' second pass
    computes them, and the float64 pz and E."""
    _, pt, eta, phi, mass = columns(events, name, ["pt", "eta", "phi", "mass"])
    px, py = pt * np.cos(phi), pt * np.sin(phi)
    fast = np.empty((len(pt), 4), np.float32)
    C._load(fast, 0, len(pt), px, py, pt, eta, mass)
    exact = np.stack([px, py, *C.numpy_pz_e(pt, eta, mass, np.arange(len(pt)))], axis=1)
    p, x, m = (a.astype(np.float64) for a in (pt, eta, mass))
    exact64 = np.stack([p * np.sinh(x), np.sqrt((p * np.cosh(x)) ** 2 + m**2)], axis=1)
    return fast, exact, exact64


@pytest.mark.parametrize("name", ["Muon", "Electron", "Jet"])
def test_fast_pz_and_e_within_2_to_minus_21_of_e(samples, name):
    """The second pass's pz and E are numpy's four_vector's, bit for bit, for all objects
    and for any few of them gathered (numpy's vector sinh and cosh, where the CPU has
    AVX-512, must give an object the same bits wherever it lies in the array); the fast ones
    within 2^-21 of E of exact, so within the 2^-20 of numpy's that MARGIN assumes."""
    rng = np.random.default_rng(4)
    for events in samples:
        fast, exact, exact64 = _both_ways(events, name)
        _, pt, eta, phi, mass = columns(events, name, ["pt", "eta", "phi", "mass"])
        columnar = np.stack(four_vector(pt, eta, phi, mass), axis=1)
        assert np.array_equal(exact, columnar)
        for size in (1, 7, 33, 1000):
            some = rng.choice(len(pt), size=min(size, len(pt)))
            pz, e = C.numpy_pz_e(pt, eta, mass, some)
            assert np.array_equal(np.stack([pz, e], axis=1), columnar[some, 2:])
        assert np.array_equal(fast[:, :2], exact[:, :2])
        energy = exact64[:, 1:]
        assert np.all(np.abs(fast[:, 2:] - exact64) <= 2.0**-21 * energy)
        assert np.all(np.abs(fast[:, 2:] - exact[:, 2:].astype(np.float64)) <= 2.0**-20 * energy)


def test_fast_pz_and_e_over_the_eta_range():
    eta = np.linspace(-5, 5, 200_001, dtype=np.float32)
    for pt, mass in ((15, 0.105), (100, 5), (1000, 150)):
        pt, mass = np.full_like(eta, pt), np.full_like(eta, mass)
        fast = np.empty((len(eta), 4), np.float32)
        C._load(fast, 0, len(eta), pt, pt, pt, eta, mass)
        p, x, m = (a.astype(np.float64) for a in (pt, eta, mass))
        energy = np.sqrt((p * np.cosh(x)) ** 2 + m**2)
        assert np.all(np.abs(fast[:, 2] - p * np.sinh(x)) <= 2.0**-21 * energy)
        assert np.all(np.abs(fast[:, 3] - energy) <= 2.0**-21 * energy)


@pytest.mark.parametrize("mass", [0.10566, 5.0])
def test_vectorised_pz_and_e_within_half_an_ulp_of_e(samples, mass):
    """pz_e (DT's muons) against long double: within 2^-24 of E (float32's rounding alone;
    the fast ones' 2^-21 is what MARGIN assumes), on the samples' muons and over |eta| up to
    EXP_MOST, where E may overflow float32 as the exact one does; NaN beyond, and for NaN."""
    rng = np.random.default_rng(21)
    n = 200_000
    pt = np.concatenate([rng.exponential(40, n) + 0.5, rng.uniform(1e-3, 100, n)])
    eta = np.concatenate([rng.uniform(-6, 6, n), rng.uniform(-C.EXP_MOST, C.EXP_MOST, n)])
    for events in samples:
        _, mu_pt, mu_eta = columns(events, "Muon", ["pt", "eta"])
        pt, eta = np.concatenate([pt, mu_pt]), np.concatenate([eta, mu_eta])
    pt, eta = pt.astype(np.float32), np.append(eta, [C.EXP_MOST, -C.EXP_MOST]).astype(np.float32)
    pt = np.append(pt, [1.0, 1.0]).astype(np.float32)
    pz, e = C.pz_e(pt, eta, np.float32(mass))
    long = np.longdouble
    ex, p, m = np.exp(eta.astype(long)), pt.astype(long), long(np.float32(mass))
    exact_pz, exact_e = p * (ex - 1 / ex) / 2, np.sqrt((p * (ex + 1 / ex) / 2) ** 2 + m * m)
    fits = exact_e < long(np.finfo(np.float32).max)
    assert fits.mean() > 0.7 and not fits.all()
    bound = 2.0**-24 * (1 + 2.0**-12) * exact_e[fits]
    assert np.all(np.abs(e[fits] - exact_e[fits]) <= bound)
    assert np.all(np.abs(pz[fits] - exact_pz[fits]) <= bound)
    assert np.all(np.isinf(e[~fits]))
    beyond = np.array([88.01, -88.5, 100, -1e30, np.inf, -np.inf, np.nan], np.float32)
    pz, e = C.pz_e(np.full(len(beyond), 30, np.float32), beyond, np.float32(mass))
    assert np.isnan(pz).all() and np.isnan(e).all()


def _m2_and_scale(parts: list[ak.Array]) -> tuple[np.ndarray, np.ndarray]:
    """m^2 of a sum of four-vectors in the kernels' float32 order, and e^2 + |p|^2."""
    x, y, z, e = (
        functools.reduce(lambda a, b: a + b, [p[:, :, i] for p in parts]) for i in range(4)
    )
    m2 = e * e - x * x - y * y - z * z
    return ak.to_numpy(ak.flatten(m2)), ak.to_numpy(ak.flatten(e * e + x * x + y * y + z * z))


@pytest.mark.parametrize(("name", "size"), [("Muon", 2), ("Electron", 2), ("Jet", 3)])
def test_margin_is_ten_times_every_mass_difference(samples, name, size):
    """Over every pair (triplet of jets): fast and numpy's m^2 differ by less than a tenth of
    the margin."""
    worst = 0.0
    for events in samples:
        offsets = columns(events, name, ["pt"])[0]
        fast, exact, _ = _both_ways(events, name)
        m2 = []
        for vectors in (fast, exact):
            jagged = ak.unflatten(vectors, np.diff(offsets))
            m2.append(_m2_and_scale(list(ak.unzip(ak.combinations(jagged, size)))))
        (fast_m2, scale), (exact_m2, _) = m2
        assert len(scale) > 0
        worst = max(worst, np.max(np.abs(fast_m2.astype(np.float64) - exact_m2) / scale))
    assert worst < C.MARGIN / 10


@pytest.mark.parametrize("margin", [C.MARGIN, np.float32(np.inf)])
@pytest.mark.parametrize("query", sorted(QUERIES))
def test_queries_equal_the_columnar_code_with_any_margin(samples, monkeypatch, query, margin):
    """With the margin (few events redone) and with an infinite one (every event redone with
    numpy's pz and E): the histograms of the columnar code, bin for bin (on the real file,
    a ttbar sample, Q5 and Q8 select no event)."""
    kernel = getattr(C, QUERIES[query])
    monkeypatch.setattr(adl, QUERIES[query], functools.partial(kernel, margin=margin))
    entries = []
    for events in samples:
        ours, theirs = getattr(adl, query)(events)[0], getattr(previous, f"adl_{query}")(events)[0]
        assert set(ours) == set(theirs)
        for key, h in theirs.items():
            assert np.array_equal(ours[key].values(flow=True), h.values(flow=True)), key
        entries.append(min(h.sum(flow=True) for h in ours.values()))
    assert entries[0] > 0


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_at_least_n_above_counts_as_awkward_does(n):
    """Q4's event selection: empty events, values exactly at the threshold (not above), NaN
    (never above), int32 and int64 offsets, against ``ak.sum(values > t, axis=1) >= n``."""
    rng = np.random.default_rng(n)
    counts = rng.poisson(3, 2000)
    counts[:50] = 0
    values = rng.exponential(40, counts.sum()).astype(np.float32)
    values[::7] = np.float32(40)
    values[::11] = np.nan
    expected = ak.to_numpy(ak.sum(ak.unflatten(values, counts) > np.float32(40), axis=1) >= n)
    for dtype in (np.int32, np.int64):
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(dtype)
        got = C.at_least_n_above(offsets, values, np.float32(40), n)
        np.testing.assert_array_equal(got, expected)


def _jet_events(counts: list[int], seed: int) -> ak.Array:
    """Events of random jets with the given counts, the last event's four jets identical but
    for their b-tags (every trijet ties; the first must win, as ak.argmin's)."""
    rng = np.random.default_rng(seed)
    total = sum(counts)
    fields = {
        "pt": rng.uniform(20, 120, total),
        "eta": rng.uniform(-2.5, 2.5, total),
        "phi": rng.uniform(-np.pi, np.pi, total),
        "mass": rng.uniform(0, 15, total),
        "btag": rng.uniform(0, 1, total),
    }
    for name, value in (("pt", 60.0), ("eta", 0.3), ("phi", 1.0), ("mass", 8.0)):
        fields[name][-4:] = value
    fields["btag"][-4:] = [0.15, 0.25, 0.35, 0.45]
    return ak.zip(
        {f"Jet_{k}": ak.unflatten(v.astype(np.float32), counts) for k, v in fields.items()},
        depth_limit=1,
    )


@pytest.mark.parametrize("margin", [C.MARGIN, np.float32(np.inf)])
def test_trijet_with_few_jets_and_ties_equals_the_columnar_code(monkeypatch, margin):
    """Events with 0-2 jets are skipped, any count above is searched, and a tie goes to the
    first trijet, fast or redone with numpy's pz and E."""
    most = C.TABLE_MOST  # up to it from the flat table, above in nested loops
    events = _jet_events([0, 1, 2, 3, 4, 5, 7, 2, 0, 9, most, most + 1, 3, 4], seed=5)
    kernel = functools.partial(C.trijet_closest_to, margin=margin)
    monkeypatch.setattr(adl, "trijet_closest_to", kernel)
    ours, theirs = adl.q6(events)[0], previous.adl_q6(events)[0]
    for key, h in theirs.items():
        assert np.array_equal(ours[key].values(flow=True), h.values(flow=True)), key
    assert ours["trijet_btag"].sum(flow=True) == 9
    _, _, btag = kernel(*adl._kinematics(events[-1:], "Jet", ["btag"]), np.float32(172.5))
    assert btag.tolist() == [np.float32(0.35)]


@pytest.mark.parametrize("margin", [C.MARGIN, np.float32(np.inf)])
@pytest.mark.parametrize("count", [3, 4, C.SIDE_BY_SIDE, 10, C.TABLE_MOST, C.TABLE_MOST + 1])
def test_trijets_all_tied_go_to_the_first(count, margin):
    """An event of identical jets (but for their b-tags): every trijet ties, which leaves
    the fast search unsure (side by side or not), and the first, jets 0, 1, 2, is chosen by
    the second pass, from the flat loop and from the nested one alike."""
    offsets = np.array([0, count])
    jets = [np.full(count, v, np.float32) for v in (60.0, 0.3, 8.0)]  # pt, eta, mass
    px, py = np.full(count, np.float32(51.0)), np.full(count, np.float32(-31.0))
    btag = np.arange(count, dtype=np.float32)
    out = C.trijet_closest_to(offsets, px, py, *jets, btag, np.float32(172.5), margin)
    assert [a.tolist() for a in out] == [[np.float32(153.0)], [np.float32(-93.0)], [2.0]]


@pytest.mark.parametrize("margin", [C.MARGIN, np.float32(np.inf)])
def test_trijets_of_many_events_of_each_count_equal_the_columnar_code(monkeypatch, margin):
    """Events searched side by side, by jet count, in several tiles each (full and partial),
    among events searched one at a time: each trijet lands in its event's row."""
    counts = np.random.default_rng(11).integers(
        0, C.SIDE_BY_SIDE + 4, (C.SIDE_BY_SIDE + 4) * 2 * C.TILE
    )
    events = _jet_events(counts.tolist(), seed=12)
    _, filled = _columnar(monkeypatch, "q6", events)
    px, py, btag = C.trijet_closest_to(
        *adl._kinematics(events, "Jet", ["btag"]), np.float32(172.5), margin
    )
    assert np.bincount(counts)[4 : C.SIDE_BY_SIDE + 1].min() > C.TILE
    np.testing.assert_array_equal(np.hypot(px, py), filled["trijet_pt"])
    np.testing.assert_array_equal(btag, filled["btag"])


COLLECTIONS = {"q5": ["Muon"], "q6": ["Jet"], "q8": ["Muon", "Electron"]}


def _random_events(seed: int, n: int = 600) -> ak.Array:
    """Events of 0-6 jets, 0-4 muons and 0-3 electrons (random charges), with MET."""
    rng = np.random.default_rng(seed)
    fields = {"MET_pt": rng.uniform(0, 200, n), "MET_phi": rng.uniform(-np.pi, np.pi, n)}
    fields = {k: v.astype(np.float32) for k, v in fields.items()}
    for name, most, mass in (("Jet", 6, 0), ("Muon", 4, 0.105658), ("Electron", 3, 0.000511)):
        counts = rng.integers(0, most + 1, n)
        total = counts.sum()
        values = {
            "pt": rng.uniform(20, 120, total),
            "eta": rng.uniform(-2.5, 2.5, total),
            "phi": rng.uniform(-np.pi, np.pi, total),
            "mass": rng.uniform(0, 15, total) if name == "Jet" else np.full(total, mass),
        }
        values = {k: v.astype(np.float32) for k, v in values.items()}
        if name == "Jet":
            values["btag"] = rng.uniform(0, 1, total).astype(np.float32)
        else:
            values["charge"] = rng.choice(np.array([-1, 1], np.int32), total)
        fields |= {f"{name}_{k}": ak.unflatten(v, counts) for k, v in values.items()}
    return ak.zip(fields, depth_limit=1)


def _spoil(events: ak.Array, names: list[str], field: str, value: float) -> ak.Array:
    """``events`` with ``field`` set to ``value`` in one object of each event: of the
    collections ``names`` listed one after another, the one at the event's index modulo
    their count (so first, middle and last objects all get their turn)."""
    counts = [ak.to_numpy(ak.num(events[f"{name}_pt"])) for name in names]
    total = sum(counts)
    position = np.arange(len(events)) % np.maximum(total, 1)
    fields = {f: events[f] for f in events.fields}
    for name, count in zip(names, counts, strict=True):
        flat = ak.to_numpy(ak.flatten(events[f"{name}_{field}"])).copy()
        hit = (position >= 0) & (position < count)
        flat[(np.cumsum(count) - count + position)[hit]] = value
        fields[f"{name}_{field}"] = ak.unflatten(flat, count)
        position = position - count
    return ak.zip(fields, depth_limit=1)


def _columnar(monkeypatch, query: str, events: ak.Array) -> tuple[dict, dict]:
    """The columnar code's histograms, and the values it filled each with."""
    filled, make = {}, previous._h

    def recording(axis):
        h = make(axis)
        fill = h.fill

        def record(values):
            filled[axis] = ak.to_numpy(values)
            return fill(values)

        h.fill = record
        return h

    monkeypatch.setattr(previous, "_h", recording)
    return getattr(previous, f"adl_{query}")(events)[0], filled


def _kernel_fills(query: str, events: ak.Array, margin) -> dict:
    """The values the kernel's query fills its histograms with: the candidates it chose."""
    met, met_phi = ak.to_numpy(events.MET_pt), ak.to_numpy(events.MET_phi)
    if query == "q5":
        muons = adl._kinematics(events, "Muon", ["charge"])
        good = C.opposite_pair_in_window(*muons, np.float32(60), np.float32(120), margin)
        return {"met": met[good]}
    if query == "q6":
        jets = adl._kinematics(events, "Jet", ["btag"])
        px, py, btag = C.trijet_closest_to(*jets, np.float32(172.5), margin)
        return {"trijet_pt": np.hypot(px, py), "btag": btag}
    leptons = (adl._kinematics(events, name, ["charge", "phi"]) for name in ("Muon", "Electron"))
    index, pt, phi = C.lead_outside_z_pair(*leptons, np.float32(91.2), margin)
    cosine = np.cos(delta_phi(phi, met_phi[index]))
    return {"mt": np.sqrt(2 * pt * met[index] * (1 - cosine))}


def _assert_as_the_columnar_code(monkeypatch, query: str, events: ak.Array, margin) -> None:
    """The same candidates (the values filled, NaN or not) and the same histograms."""
    theirs, filled = _columnar(monkeypatch, query, events)
    ours = _kernel_fills(query, events, margin)
    assert set(ours) == set(filled)
    for axis, values in filled.items():
        np.testing.assert_array_equal(ours[axis], values, err_msg=axis)
    kernel = getattr(C, QUERIES[query])
    monkeypatch.setattr(adl, QUERIES[query], functools.partial(kernel, margin=margin))
    for key, h in getattr(adl, query)(events)[0].items():
        assert np.array_equal(h.values(flow=True), theirs[key].values(flow=True)), key


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's, on the bad values
@pytest.mark.parametrize("margin", [C.MARGIN, np.float32(np.inf)])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 1e30])
@pytest.mark.parametrize("field", ["pt", "eta", "phi", "mass"])
@pytest.mark.parametrize("query", sorted(QUERIES))
def test_one_bad_value_per_event_gives_the_columnar_results(
    monkeypatch, query, field, value, margin
):
    """NaN, infinite or overflowing pt, eta, phi or mass in one jet or lepton of each event
    (a NaN or infinite mass of the pairs and trijets it is in): the columnar code's
    candidates and histograms (ak.argmin and ak.argmax keep a NaN first value, and skip a
    NaN after it)."""
    events = _spoil(_random_events(7), COLLECTIONS[query], field, value)
    _assert_as_the_columnar_code(monkeypatch, query, events, margin)


def _collinear(size: int) -> dict[str, np.ndarray]:
    """pt, eta, phi and mass of ``size`` massless objects along one direction whose system's
    m^2, as numpy computes it in float32, comes out negative (a mass of 0)."""
    rng = np.random.default_rng(3)
    direction = np.full(size, np.float32(0.7)), np.full(size, np.float32(1.1))
    massless = np.zeros(size, np.float32)
    while True:
        pt = rng.uniform(20, 120, size).astype(np.float32)
        px, py, pz, e = (sum(c) for c in four_vector(pt, *direction, massless))
        if e * e - px * px - py * py - pz * pz < 0:
            return {"pt": pt, "eta": direction[0], "phi": direction[1], "mass": massless}


@pytest.mark.parametrize("margin", [C.MARGIN, np.float32(np.inf)])
@pytest.mark.parametrize("query", sorted(QUERIES))
def test_negative_m2_from_rounding_gives_the_columnar_results(monkeypatch, query, margin):
    """The first pair (trijet) of every event with one has an m^2 rounded below 0: a mass
    of 0, as numpy's ``sqrt(maximum(m2, 0))``."""
    events = _random_events(9)
    name, size = COLLECTIONS[query][0], 3 if query == "q6" else 2
    fields = {f: events[f] for f in events.fields}
    count = ak.to_numpy(ak.num(events[f"{name}_pt"]))
    first = np.repeat(np.arange(len(count)), count) - np.repeat(np.cumsum(count) - count, count)
    for field, values in _collinear(size).items():
        flat = ak.to_numpy(ak.flatten(events[f"{name}_{field}"])).copy()
        for k, value in enumerate(values):
            flat[first == k] = value
        fields[f"{name}_{field}"] = ak.unflatten(flat, count)
    if query != "q6":
        charge = ak.to_numpy(ak.flatten(events[f"{name}_charge"])).copy()
        charge[first == 0], charge[first == 1] = 1, -1
        fields[f"{name}_charge"] = ak.unflatten(charge, count)
    _assert_as_the_columnar_code(monkeypatch, query, ak.zip(fields, depth_limit=1), margin)
