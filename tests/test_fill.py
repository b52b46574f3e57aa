"""The compiled fill gives boost-histogram's own histogram, bin for bin."""

from __future__ import annotations

import hist
import numpy as np
import pytest

from analysis_kernels.kernels.fill import fill, fill_categories

RNG = np.random.default_rng(16)


def edge_values(axis, dtype) -> np.ndarray:
    """Random values over and around the axis, its edges exactly, the float values just
    below and above each edge (in ``dtype`` and in float64), the limits, inf and nan."""
    edges = np.asarray(axis.edges, dtype=np.float64)
    lo, hi = edges[0], edges[-1]
    width = hi - lo
    values = [RNG.uniform(lo - 0.2 * width, hi + 0.2 * width, 5000)]
    for e in edges:
        for kind in (np.float64, np.float32):
            x = kind(e)
            values.append(
                np.array(
                    [x, np.nextafter(x, kind(-np.inf)), np.nextafter(x, kind(np.inf))],
                    dtype=np.float64,
                )
            )
    # float32 values that round onto or next to the edges
    near = (edges[:, None] + np.array([-1e-6, -1e-7, 0, 1e-7, 1e-6]) * width).ravel()
    values.append(near)
    values.append(np.array([np.inf, -np.inf, np.nan, lo, hi, 0.0, -0.0, 1e30, -1e30]))
    finfo = np.finfo(dtype) if np.dtype(dtype).kind == "f" else None
    out = np.concatenate(values)
    if finfo is not None:
        out = np.clip(out, -finfo.max, finfo.max, where=np.isfinite(out), out=out)
    return RNG.permutation(out.astype(dtype))


def same(a: hist.Hist, b: hist.Hist) -> None:
    assert a == b  # axes and storage
    va, vb = np.asarray(a.view(flow=True)), np.asarray(b.view(flow=True))
    assert va.dtype == vb.dtype
    if va.dtype.names:
        for name in va.dtype.names:
            assert np.array_equal(va[name], vb[name]), name
    else:
        assert np.array_equal(va, vb)


REGULAR = [
    hist.axis.Regular(100, 0, 200),
    hist.axis.Regular(100, 15, 60),
    hist.axis.Regular(24, -1.2, 1.2),
    hist.axis.Regular(40, 91.1876 - 10, 91.1876 + 10),
    hist.axis.Regular(7, 0.1, 0.7),
    hist.axis.Regular(3, -1e-3, 2.7e-3),
    hist.axis.Regular(10, 0, 1, underflow=False),
    hist.axis.Regular(10, 0, 1, overflow=False),
    hist.axis.Regular(13, -3.3, 7.1, underflow=False, overflow=False),
    hist.axis.Regular(1, 0, 1, underflow=False, overflow=False),
    hist.axis.Regular(50, -np.pi, np.pi),
    hist.axis.Regular(1000, 0.1, 0.3),
    hist.axis.Regular(5, 1e6, 1e6 + 1),  # bins narrower than float32's steps there
    hist.axis.Regular(7, -1e20, 1e20, overflow=False),
]


def boundaries(axis, dtype) -> np.ndarray:
    """Where boost-histogram's bin changes on a Regular axis, for values of float type
    ``dtype``: the smallest value of each bin and of the overflow, and the values of
    ``dtype`` just below and above it. Found by bisection over the values of ``dtype`` (as
    integers in the same order) with the axis' own ``index``, so these are the edges of
    boost-histogram's formula, not the edges as printed (``axis.edges``)."""
    ftype = np.dtype(dtype)
    utype = np.dtype(f"u{ftype.itemsize}")
    sign = utype.type(1) << utype.type(8 * ftype.itemsize - 1)

    def key(x):
        bits = np.asarray(x, dtype=ftype).view(utype)
        return np.where(bits & sign, ~bits, bits | sign)

    def value(k):
        return np.where(k & sign, k ^ sign, ~k).astype(utype).view(ftype)

    targets = np.arange(len(axis) + 1)
    below = np.full(len(targets), key([-np.inf])[0])  # below[t]: a value under bin t
    above = np.full(len(targets), key([np.inf])[0])  # above[t]: one in bin t or over it
    while np.any(above - below > 1):
        middle = below + (above - below) // 2
        reached = axis.index(value(middle).astype(np.float64)) >= targets
        above, below = np.where(reached, middle, above), np.where(reached, below, middle)
    first = value(above)
    assert np.all(axis.index(value(above - 1).astype(np.float64)) < targets)
    return np.concatenate([first, value(above - 1), value(above + 1)])


def extremes(dtype) -> np.ndarray:
    """The float type's largest, smallest, subnormal and signed zero values, infinities, NaN."""
    finfo = np.finfo(dtype)
    large = [finfo.max, -finfo.max, np.inf, -np.inf, np.nan, -np.nan]
    small = [finfo.tiny, np.nextafter(dtype(0), dtype(1)), 0.0]
    return np.array([*large, *small, *(-x for x in small)], dtype=dtype)


def regular_values(axis, dtype) -> np.ndarray:
    return RNG.permutation(
        np.concatenate([edge_values(axis, dtype), boundaries(axis, dtype), extremes(dtype)])
    )


@pytest.mark.parametrize("axis", REGULAR, ids=repr)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_regular_axis_edges_and_flow(axis, dtype):
    values = regular_values(axis, dtype)
    same(fill(hist.Hist(axis), values), hist.Hist(axis).fill(values))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_boundaries_are_where_the_bin_changes(dtype):
    axis = hist.axis.Regular(100, 0, 200)
    first, before, after = boundaries(axis, dtype).reshape(3, -1)
    bins = np.arange(len(axis) + 1)
    assert np.array_equal(axis.index(first.astype(np.float64)), bins)
    assert np.array_equal(axis.index(before.astype(np.float64)), bins - 1)
    assert np.array_equal(axis.index(after.astype(np.float64)), bins)
    # the formula's edges are not all the printed ones, the reason to find them
    assert not np.array_equal(first[:-1].astype(np.float64), axis.edges[:-1])


@pytest.mark.parametrize("axis", REGULAR, ids=repr)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_regular_axis_masks_at_the_edges(axis, dtype):
    values = regular_values(axis, dtype)
    n = len(values)
    for mask in (
        RNG.random(n) < 0.3,
        np.zeros(n, dtype=bool),
        np.ones(n, dtype=bool),
        np.isfinite(values),
        ~np.isfinite(values),
    ):
        same(fill(hist.Hist(axis), values, where=mask), hist.Hist(axis).fill(values[mask]))


@pytest.mark.parametrize("axis", REGULAR, ids=repr)
def test_regular_axis_weights_mask_and_weight_storage(axis):
    values = regular_values(axis, np.float32)
    weights = RNG.normal(1, 0.5, len(values))
    mask = RNG.random(len(values)) < 0.6
    same(
        fill(hist.Hist(axis), values, weight=weights, where=mask),
        hist.Hist(axis).fill(values[mask], weight=weights[mask]),
    )
    same(
        fill(hist.Hist(axis), values, where=mask),
        hist.Hist(axis).fill(values[mask]),
    )
    for weight in (None, weights, 2.5):
        ours = fill(hist.Hist(axis, storage=hist.storage.Weight()), values, weight=weight)
        theirs = hist.Hist(axis, storage=hist.storage.Weight())
        theirs.fill(values) if weight is None else theirs.fill(values, weight=weight)
        same(ours, theirs)


def test_integer_dtypes_on_a_regular_axis():
    axis = hist.axis.Regular(10, -5, 5)
    for dtype in (np.int32, np.int64, np.uint16, np.int8):
        values = RNG.integers(-8 if np.dtype(dtype).kind == "i" else 0, 9, 1000).astype(dtype)
        same(fill(hist.Hist(axis), values), hist.Hist(axis).fill(values))
    # int64 beyond 2**53 rounds to float64 as boost-histogram converts it
    axis = hist.axis.Regular(10, 2**60, 2**60 + 2**12)
    near = axis.edges.astype(np.int64)[:, None] + np.arange(-512, 513, 64)
    values = np.concatenate([2**60 + RNG.integers(-(2**11), 2**13, 5000), near.ravel()])
    same(fill(hist.Hist(axis), values), hist.Hist(axis).fill(values))


def test_other_inputs_on_a_regular_axis():
    """float16, lists, strided float32 columns and masks: the same as boost-histogram."""
    axis = hist.axis.Regular(24, -1.2, 1.2)
    values = regular_values(axis, np.float32)
    mask = RNG.random(len(values)) < 0.5
    with np.errstate(over="ignore"):
        half = values.astype(np.float16)  # the large ones to inf
    for v in (half, values[::3], values.astype(np.float64)[1::2]):
        same(fill(hist.Hist(axis), v), hist.Hist(axis).fill(v))
    same(
        fill(hist.Hist(axis), values[::2], where=mask[::2]),
        hist.Hist(axis).fill(values[::2][mask[::2]]),
    )
    same(fill(hist.Hist(axis), list(values[:100])), hist.Hist(axis).fill(values[:100]))
    with pytest.raises(ValueError):
        fill(hist.Hist(axis), values, where=mask[:-1])


@pytest.mark.parametrize("storage", [hist.storage.Double, hist.storage.Weight])
def test_filling_a_histogram_that_has_entries(storage):
    """Counts and weights add to what is there as boost-histogram adds them one by one,
    whole-valued bins or not (0.1 steps: the counts are added one at a time)."""
    axis = hist.axis.Regular(20, -1, 1)
    values = regular_values(axis, np.float32)
    mask = RNG.random(len(values)) < 0.5
    ours, theirs = hist.Hist(axis, storage=storage()), hist.Hist(axis, storage=storage())
    for weight, where in (
        (None, None),
        (0.1, None),
        (None, mask),
        (RNG.normal(size=len(values)), mask),
    ):
        fill(ours, values, weight=weight, where=where)
        selected = values if where is None else values[where]
        if weight is None:
            theirs.fill(selected)
        else:
            w = np.broadcast_to(weight, values.shape)
            theirs.fill(selected, weight=w if where is None else w[where])
        same(ours, theirs)


@pytest.mark.parametrize("storage", [hist.storage.Double, hist.storage.Weight])
def test_a_category_and_a_regular_axis(storage):
    def histogram():
        return hist.Hist(
            hist.axis.StrCategory(["a", "b"]),
            hist.axis.Regular(10, 0, 1, underflow=False),
            storage=storage(),
        )

    values = regular_values(hist.axis.Regular(10, 0, 1), np.float32)
    mask = RNG.random(len(values)) < 0.5
    weights = RNG.normal(1, 0.5, len(values))
    ours, theirs = histogram(), histogram()
    for category in ("a", "b", "c"):
        fill(ours, category, values, where=mask)
        theirs.fill(category, values[mask])
        fill(ours, category, values, weight=weights)
        theirs.fill(category, values, weight=weights)
    same(ours, theirs)


VARIABLE = [
    hist.axis.Variable([20, 25, 30, 35, 40, 45, 50, 60, 80, 120, 200]),
    hist.axis.Variable([-1.5, -0.3, 0.0, 0.2, 2.0], underflow=False),
    hist.axis.Variable([-1.5, -0.3, 0.0, 0.2, 2.0], overflow=False),
    hist.axis.Variable([0.1, 0.7, 1.3], underflow=False, overflow=False),
    hist.axis.Variable(np.geomspace(1, 1000, 70)),  # bisected, not counted
    hist.axis.Variable(np.geomspace(1, 1000, 70), underflow=False, overflow=False),
]


@pytest.mark.parametrize("axis", VARIABLE, ids=repr)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_variable_axis_edges_and_flow(axis, dtype):
    values = edge_values(axis, dtype)
    same(fill(hist.Hist(axis), values), hist.Hist(axis).fill(values))


@pytest.mark.parametrize("axis", VARIABLE, ids=repr)
def test_variable_axis_over_blocks_of_values(axis):
    """More values than a block, edges among them, NaN and infinities spread through."""
    lo, hi = axis.edges[0], axis.edges[-1]
    values = RNG.uniform(lo - (hi - lo) / 4, hi + (hi - lo) / 4, 5000).astype(np.float32)
    values[::97] = np.float32(hi)
    values[::89] = np.float32(lo)
    values[::101], values[::103], values[::107] = np.nan, np.inf, -np.inf
    same(fill(hist.Hist(axis), values), hist.Hist(axis).fill(values))


INTEGER = [
    hist.axis.Integer(-2, 3),
    hist.axis.Integer(-2, 3, underflow=False, overflow=False),
    hist.axis.Integer(1, 13, underflow=False),
    hist.axis.Integer(1, 5, overflow=False),
]


@pytest.mark.parametrize("axis", INTEGER, ids=repr)
@pytest.mark.parametrize("dtype", [np.int32, np.int16, np.uint8])
def test_integer_axis_and_flow(axis, dtype):
    low = -6 if np.dtype(dtype).kind == "i" else 0
    values = RNG.integers(low, 16, 3000).astype(dtype)
    same(fill(hist.Hist(axis), values), hist.Hist(axis).fill(values))


def dt_like_histogram(variable: bool) -> hist.Hist:
    second = (
        hist.axis.Variable([20, 25, 30, 35, 40, 45, 50, 60, 80, 120, 200], name="pt")
        if variable
        else hist.axis.Regular(24, -1.2, 1.2, name="eta")
    )
    return hist.Hist(
        hist.axis.StrCategory(["all", "fiducial"], name="selection"),
        hist.axis.Integer(-2, 3, name="wheel", underflow=False, overflow=False),
        second,
        hist.axis.Integer(1, 5, name="station", underflow=False, overflow=False),
        hist.axis.Boolean(name="passed"),
    )


@pytest.mark.parametrize("variable", [True, False])
def test_categories_many_axes_and_masks(variable):
    n = 20_000
    wheel = RNG.integers(-3, 4, n).astype(np.int32)
    station = RNG.integers(0, 6, n).astype(np.int32)
    passed = RNG.random(n) < 0.9
    x = (
        RNG.uniform(10, 250, n).astype(np.float32)
        if variable
        else RNG.uniform(-1.5, 1.5, n).astype(np.float32)
    )
    x[:50] = np.nan
    x[50:60] = 20 if variable else -1.2
    fiducial = RNG.random(n) < 0.5
    values = (wheel, x, station, passed)
    theirs = dt_like_histogram(variable)
    theirs.fill("all", *values)
    theirs.fill("fiducial", *(v[fiducial] for v in values))
    theirs.fill("nowhere", *values)  # to the category axis' overflow bin
    grouped = fill_categories(
        dt_like_histogram(variable), {"all": None, "fiducial": fiducial, "nowhere": None}, *values
    )
    one_by_one = dt_like_histogram(variable)
    fill(one_by_one, "all", *values)
    fill(one_by_one, "fiducial", *values, where=fiducial)
    fill(one_by_one, "nowhere", *values)
    same(grouped, theirs)
    same(one_by_one, theirs)


def test_what_it_does_not_compile_goes_to_boost_histogram():
    values = RNG.uniform(-1, 12, 1000)
    for axis in (
        hist.axis.Regular(10, 1, 10, transform=hist.axis.transform.log),
        hist.axis.Regular(10, 0, 10, circular=True),
        hist.axis.Regular(10, 0, 10, growth=True),
    ):
        same(fill(hist.Hist(axis), values), hist.Hist(axis).fill(values))
    axis = hist.axis.Regular(10, 0, 10)
    storage = hist.storage.Int64
    same(
        fill(hist.Hist(axis, storage=storage()), values),
        hist.Hist(axis, storage=storage()).fill(values),
    )
    with pytest.raises(TypeError):  # as boost-histogram: integer axes take integers
        fill(hist.Hist(hist.axis.Integer(0, 10)), values)
    empty = np.array([], dtype=np.float32)
    same(fill(hist.Hist(axis), empty), hist.Hist(axis).fill(empty))


@pytest.mark.parametrize("flow", [(True, True), (False, False)])
def test_a_variable_axis_with_many_edges(flow):
    axis = hist.axis.Variable(
        np.cumsum(RNG.uniform(0.1, 1, 200)), underflow=flow[0], overflow=flow[1]
    )
    values = edge_values(axis, np.float32)
    same(fill(hist.Hist(axis), values), hist.Hist(axis).fill(values))
