"""Compiled histogram fills: ``hist.Hist.fill`` without boost-histogram's per-call cost.

boost-histogram converts every value to float64 (a copy of each float32 column) and goes
through Python for each call; for a chunk's worth of values that is as long as reading a
float branch. :func:`fill` computes each entry's bin as boost-histogram's axes do and adds
into the histogram's storage in a numba loop, in input order, so the histogram is the same
bin for bin (tests/test_fill.py checks it against boost-histogram's own fill on edges, just
below and above them, the axis limits, infinities and NaN). The bin of a Regular axis is
``z = (x - min) / delta`` in float64 with ``min`` and ``delta`` as the axis stores them:
``int(z * size)`` for ``0 <= z < 1``, underflow for ``z < 0``, overflow otherwise (NaN
included), the upper edge in the last bin when the axis has no overflow bin. The loops
compute it with selects, not branches, for a block of values at a time (float32 converted
value by value, not copied to a float64 column), so that the division vectorizes, then count
the block: each about half a nanosecond a value. A multiplication by a precomputed factor
instead needs a correction against the bin's exact bounds wherever it rounds the other way,
and that scalar loop takes longer than the vectorized division. A Variable axis takes
``upper_bound`` over its edges, an Integer axis ``value - min``, a Boolean axis the value; a
category axis (StrCategory, IntCategory) takes one value per call, as the DT analysis fills
one selection at a time. Anything else (growth, circular or transformed axes, storages other
than Double and Weight, float values on an Integer axis) goes to ``h.fill``.
"""

from __future__ import annotations

from collections.abc import Mapping

import boost_histogram._core.axis as _axis
import boost_histogram._core.hist as _hist
import numba
import numpy as np

_REGULAR = (_axis.regular_uoflow, _axis.regular_uflow, _axis.regular_oflow, _axis.regular_none)
_VARIABLE = (
    _axis.variable_uoflow,
    _axis.variable_uflow,
    _axis.variable_oflow,
    _axis.variable_none,
)
_INTEGER = (_axis.integer_uoflow, _axis.integer_uflow, _axis.integer_oflow, _axis.integer_none)
_CATEGORY = (
    _axis.category_str,
    _axis.category_str_none,
    _axis.category_int,
    _axis.category_int_none,
)
_INT_DTYPES = frozenset(np.dtype(t) for t in ("i1", "i2", "i4", "u1", "u2"))
_BLOCK = 512  # values whose bins are computed at once, then counted


def _regular_spec(ax, values):
    """``values`` as the Regular loops take them and ``ax``'s (a C++ axis) min, delta and
    size. float32 stays as it is: the loops convert each value to float64, the same values
    as boost-histogram's float64 copy of the array; other types are converted as it does."""
    *_, lo, delta = ax.__getstate__()
    if values.dtype != np.float32:
        values = values.astype(np.float64, copy=False)
    return values, (float(lo), float(delta), int(ax.size))


@numba.njit(cache=True, inline="always")
def _regular_slot(x, lo, delta, size, overflow):
    """boost-histogram's ``regular::index`` of ``x`` plus one: 0 the underflow, 1 to
    ``size`` the bins, ``size + 1`` the overflow (NaN included). Selects, not branches, so
    that a loop over a block of values vectorizes, the float64 division included."""
    z = (np.float64(x) - lo) / delta
    inside = (z >= 0.0) & (z < 1.0)
    i = np.int32((z if inside else 0.0) * size)
    upper_edge = (not overflow) & (z == 1.0)  # in the last bin
    i = i if inside else (np.int32(size - 1) if upper_edge else np.int32(size))
    i = np.int32(-1) if z < 0.0 else i
    return i + np.int32(1)


@numba.njit(cache=True)
def _regular_slots(values, lo, delta, size, overflow, slots):
    """The slots of a block of values into ``slots``. A function of its own on slices:
    inlined in the caller's loop, or indexing the whole arrays, it vectorizes worse (1.5
    times as long)."""
    for j in range(len(values)):
        slots[j] = _regular_slot(values[j], lo, delta, size, overflow)


@numba.njit(cache=True, inline="always")
def _taken(where, k):
    """1 if entry ``k`` is filled, else 0. Masks are applied by adding this to the counts:
    a select in the slots' loop makes that loop vectorize worse."""
    if where is None:
        return np.int64(1)
    return np.int64(where[k])


@numba.njit(cache=True, inline="always")
def _add_ones(v, c):
    """``v`` plus ``c`` ones added one by one, as boost-histogram does: at once where that
    is exact (an integer-valued bin below 2**52)."""
    if v == np.floor(v) and abs(v) + c < 2.0**52:
        return v + c
    for _ in range(c):
        v += 1.0
    return v


@numba.njit(cache=True)
def _regular_counts(values, lo, delta, size, overflow, where):
    """How many values in ``where`` fall in each slot, counted in four interleaved tables so
    that runs of one bin do not wait on each other."""
    counts = np.zeros((4, size + 2), dtype=np.int64)
    slots = np.empty(_BLOCK, dtype=np.uint32)  # unsigned: indexes without a wraparound test
    for start in range(0, len(values), _BLOCK):
        stop = min(len(values), start + _BLOCK)
        _regular_slots(values[start:stop], lo, delta, size, overflow, slots)
        block = where if where is None else where[start:stop]  # faster than where[start + j]
        for j in range(stop - start):
            counts[j & 3, slots[j]] += _taken(block, j)
    return counts[0] + counts[1] + counts[2] + counts[3]


@numba.njit(cache=True)
def _fill_regular(inner, flow, values, lo, delta, overflow, where, weight):
    """Fill one Regular axis: its bins ``inner`` and ``flow`` (underflow, overflow; the
    caller keeps those the axis has). Unit weights are counted and each count added at once
    where exact; weights are added one by one in input order, as boost-histogram does."""
    size = len(inner)
    if weight is None:
        counts = _regular_counts(values, lo, delta, size, overflow, where)
        flow[0] = _add_ones(flow[0], counts[0])
        for b in range(size):
            if counts[b + 1]:
                inner[b] = _add_ones(inner[b], counts[b + 1])
        flow[1] = _add_ones(flow[1], counts[size + 1])
        return
    bins = np.empty(size + 2)
    bins[0], bins[1 : size + 1], bins[size + 1] = flow[0], inner, flow[1]
    slots = np.empty(_BLOCK, dtype=np.uint32)  # unsigned: indexes without a wraparound test
    for start in range(0, len(values), _BLOCK):
        stop = min(len(values), start + _BLOCK)
        _regular_slots(values[start:stop], lo, delta, size, overflow, slots)
        block, weights = where if where is None else where[start:stop], weight[start:stop]
        for j in range(stop - start):
            if _taken(block, j):
                bins[slots[j]] += weights[j]
    flow[0], inner[:], flow[1] = bins[0], bins[1 : size + 1], bins[size + 1]


@numba.njit(cache=True, inline="always")
def _storage_index(i, size, underflow, overflow):
    """The storage index (flow bins included) of axis index ``i`` (below 0: underflow, from
    ``size`` on: overflow), or -1 where the axis has no such bin. Selects, not branches, so
    that the loops using it vectorize."""
    ok = ((i >= 0) | (underflow != 0)) & ((i < size) | overflow)
    s = min(max(i, np.int64(-1)), np.int64(size)) + underflow
    return s if ok else np.int64(-1)


@numba.njit(cache=True, inline="always")
def _combine(current, i, stride):
    return current + i * stride if (current >= 0) & (i >= 0) else np.int64(-1)


@numba.njit(cache=True)
def _add_regular(index, values, lo, delta, size, underflow, overflow, stride):
    for k in range(len(values)):
        i = np.int64(_regular_slot(values[k], lo, delta, size, overflow)) - 1
        index[k] = _combine(index[k], _storage_index(i, size, underflow, overflow), stride)


@numba.njit(cache=True, inline="always")
def _upper_bound(x, edges):
    """``std::upper_bound`` less one of ``x`` (NaN: above all edges) by bisection."""
    a, b = 0, len(edges)
    while a < b:
        mid = (a + b) // 2
        if x < edges[mid]:
            b = mid
        else:
            a = mid + 1
    return np.int64(a - 1)


@numba.njit(cache=True)
def _upper_bounds(values, edges, out):
    """``std::upper_bound`` less one of a block of values (the number of edges not above
    each, NaN above none, less one) into ``out``: edge by edge over the block, a loop that
    vectorizes, where a count per value (its edges in an inner loop) took 4 ns a value."""
    for k in range(len(values)):
        out[k] = -1
    for j in range(len(edges)):
        edge = edges[j]
        for k in range(len(values)):
            out[k] += not (np.float64(values[k]) < edge)


@numba.njit(cache=True)
def _add_variable(index, values, edges, underflow, overflow, stride):
    size = len(edges) - 1
    last = edges[size]
    bins = np.empty(_BLOCK, dtype=np.int64)
    for start in range(0, len(values), _BLOCK):
        stop = min(len(values), start + _BLOCK)
        if size < 64:  # the short edge lists of analyses: counted
            _upper_bounds(values[start:stop], edges, bins)
        else:
            for k in range(start, stop):
                bins[k - start] = _upper_bound(np.float64(values[k]), edges)
        for k in range(start, stop):
            at_last = (not overflow) & (np.float64(values[k]) == last)  # in the last bin
            i = np.int64(size - 1) if at_last else bins[k - start]
            index[k] = _combine(index[k], _storage_index(i, size, underflow, overflow), stride)


@numba.njit(cache=True)
def _add_integer(index, values, start, size, underflow, overflow, stride):
    for k in range(len(values)):
        i = _storage_index(np.int64(values[k]) - start, size, underflow, overflow)
        index[k] = _combine(index[k], i, stride)


@numba.njit(cache=True)
def _add_boolean(index, values, stride):
    for k in range(len(values)):
        index[k] = _combine(index[k], np.int64(values[k]), stride)


@numba.njit(cache=True)
def _accumulate(flat, offset, index, where, weight):
    """Add each entry's weight (1 when None) at its bin; entries at -1 or not in ``where``
    are skipped. Unit weights are counted (as in :func:`_regular_counts`) and added with
    :func:`_add_ones`; weights are added one by one in input order, as boost-histogram does.
    """
    n = len(index)
    if weight is None:
        size = len(flat) - offset
        counts = np.zeros((4, size + 1), dtype=np.int64)  # the last column: not filled
        for k in range(n):
            i = index[k]
            if i < 0 or (where is not None and not where[k]):
                i = size
            counts[k & 3, i] += 1
        for b in range(size):
            c = counts[0, b] + counts[1, b] + counts[2, b] + counts[3, b]
            if c:
                flat[offset + b] = _add_ones(flat[offset + b], c)
        return
    for k in range(n):
        if index[k] < 0 or (where is not None and not where[k]):
            continue
        flat[offset + index[k]] += weight[k]


@numba.njit(cache=True)
def _accumulate_weighted(value, variance, offset, index, where, weight):
    for k in range(len(index)):
        if index[k] < 0 or (where is not None and not where[k]):
            continue
        w = 1.0 if weight is None else np.float64(weight[k])
        value[offset + index[k]] += w
        variance[offset + index[k]] += w * w


def _storage(h):
    """The flat float64 buffers under ``h.view(flow=True)`` and its strides in entries, or
    None when the storage is not Double or Weight."""
    kind = type(h._hist)
    if kind not in (_hist.any_double, _hist.any_weight):
        return None
    view = np.asarray(h.view(flow=True))
    if not (view.flags.f_contiguous or view.flags.c_contiguous):
        return None
    flat = view.reshape(-1, order="F" if view.flags.f_contiguous else "C")
    if not np.shares_memory(flat, view):
        return None
    strides = [s // view.itemsize for s in view.strides]
    if kind is _hist.any_double:
        return (flat,), strides
    return (flat["value"], flat["variance"]), strides


def _category_index(axis, value) -> int:
    """The bin of a category; its size (the overflow bin) for one it does not have."""
    try:
        return int(axis.index(value))
    except KeyError:
        return len(axis)


def _is_array(value) -> bool:
    return np.ndim(value) > 0


def _plan(h, values):
    """Per axis what to do with its value, or None when the compiled path does not apply."""
    if len(values) != h.ndim:
        return None
    axes, plan = h.axes, []
    for ax, value in zip(axes, values, strict=True):
        inner = ax._ax
        kind = type(inner)
        flow = (int(bool(inner.traits_underflow)), bool(inner.traits_overflow))
        if kind in _CATEGORY:
            if _is_array(value):
                return None
            plan.append(("category", _category_index(ax, value), len(ax), flow))
            continue
        if not _is_array(value):
            return None  # a scalar on a continuous axis: rare, left to boost-histogram
        value = np.asarray(value)
        if value.ndim != 1:
            return None
        if kind in _REGULAR:
            if value.dtype.kind not in "fiu":
                return None
            plan.append(("regular", *_regular_spec(inner, value), flow))
        elif kind in _VARIABLE:
            if value.dtype.kind not in "fiu":
                return None
            plan.append(("variable", value, np.asarray(ax.edges, dtype=np.float64), flow))
        elif kind in _INTEGER:
            if value.dtype not in _INT_DTYPES:
                return None
            plan.append(("integer", value, (int(inner.__getstate__()[-1]), len(ax)), flow))
        elif kind is _axis.boolean:
            if value.dtype != np.bool_:
                return None
            plan.append(("boolean", value, None, flow))
        else:
            return None
    lengths = {len(p[1]) for p in plan if p[0] != "category"}
    if len(lengths) > 1:
        return None
    return plan


def _index(plan, strides, n):
    """The storage offset of every entry over the array axes (-1: not filled) and the
    offset of the scalar (category) axes, or None for a category that is not filled."""
    index = np.zeros(n, dtype=np.int64)
    offset = 0
    for (kind, value, spec, (uf, of)), stride in zip(plan, strides, strict=True):
        if kind == "category":
            i = value  # the category's index: size for one it does not know (overflow)
            if i >= spec and not of:
                return None, 0
            offset += i * stride
        elif kind == "regular":
            _add_regular(index, value, *spec, uf, of, stride)
        elif kind == "variable":
            _add_variable(index, value, spec, uf, of, stride)
        elif kind == "integer":
            _add_integer(index, value, *spec, uf, of, stride)
        else:
            _add_boolean(index, value, stride)
    return index, offset


def _mask(where, n):
    if where is None:
        return None
    where = np.asarray(where)
    if where.dtype != np.bool_ or where.shape != (n,):
        raise ValueError("where must be a boolean array with one entry per value")
    return where


def _weights(weight, n):
    if weight is None:
        return None
    return np.broadcast_to(np.asarray(weight, dtype=np.float64), (n,))


def _fallback(h, values, weight, where):
    if where is not None:
        where = np.asarray(where)
        values = [v[where] if _is_array(v) else v for v in values]
        if _is_array(weight):
            weight = np.asarray(weight)[where]
    return h.fill(*values) if weight is None else h.fill(*values, weight=weight)


def _fill_1d(h, value, weight, where) -> bool:
    """Fill ``h`` if it has one Regular axis and Double storage, the queries' case: its bins
    through the buffer protocol (0.5 us) and its flow bins one by one, as
    ``h.view(flow=True)`` alone takes 9 us, as long as filling 8000 values (pybind11 has
    numpy parse the buffer's format in Python)."""
    core = h._hist
    if type(core) is not _hist.any_double or core.rank() != 1 or not _is_array(value):
        return False
    ax, values = core.axis(0), np.asarray(value)
    if type(ax) not in _REGULAR or values.ndim != 1 or values.dtype.kind not in "fiu":
        return False
    values, (lo, delta, size) = _regular_spec(ax, values)
    n, under, over = len(values), ax.traits_underflow, ax.traits_overflow
    flow = np.array([core.at(-1) if under else 0.0, core.at(size) if over else 0.0])
    mask, weights = _mask(where, n), _weights(weight, n)
    _fill_regular(np.asarray(core), flow, values, lo, delta, over, mask, weights)
    if under:
        core._at_set(flow[0], -1)
    if over:
        core._at_set(flow[1], size)
    return True


def _fill_axis(buffers, plan, strides, mask, weights):
    """Fill the one array axis of ``plan``, a Regular one, at the bin of its categories, in
    each buffer (Weight storage: the variance adds the squared weights)."""
    start, axis = 0, None
    for (kind, value, spec, flow), stride in zip(plan, strides, strict=True):
        if kind != "category":
            axis = (value, spec, flow, stride)
        elif value >= spec and not flow[1]:
            return  # a category the axis does not have, and no overflow bin
        else:
            start += value * stride
    values, (lo, delta, size), (uf, of), stride = axis
    squares = None if weights is None else weights * weights
    for buffer, w in zip(buffers, (weights, squares), strict=False):
        bins = buffer[start : start + stride * (size + uf + of) : stride]
        flow = np.array([bins[0] if uf else 0.0, bins[-1] if of else 0.0])
        _fill_regular(bins[uf : uf + size], flow, values, lo, delta, of, mask, w)
        if uf:
            bins[0] = flow[0]
        if of:
            bins[-1] = flow[1]


def fill(h, *values, weight=None, where=None):
    """``h.fill(*values, weight=weight)`` for the entries where ``where`` is true (all when
    None), compiled where the axes and storage allow it; returns ``h``."""
    if len(values) == 1 and _fill_1d(h, values[0], weight, where):
        return h
    plan = _plan(h, values)
    storage = _storage(h) if plan is not None else None
    if storage is None:
        return _fallback(h, values, weight, where)
    buffers, strides = storage
    arrays = [p for p in plan if p[0] != "category"]
    if not arrays:
        return _fallback(h, values, weight, where)
    n = len(arrays[0][1])
    mask, weights = _mask(where, n), _weights(weight, n)
    if len(arrays) == 1 and arrays[0][0] == "regular":
        _fill_axis(buffers, plan, strides, mask, weights)
        return h
    index, offset = _index(plan, strides, n)
    if index is not None:
        _add(buffers, offset, index, mask, weights)
    return h


def _add(buffers, offset, index, mask, weights):
    if len(buffers) == 1:
        _accumulate(buffers[0], offset, index, mask, weights)
    else:
        _accumulate_weighted(*buffers, offset, index, mask, weights)


def fill_categories(h, selections: Mapping, *values, weight=None):
    """Fill the categories of ``h``'s first axis at once: ``selections`` maps each category
    to a boolean mask of the entries it takes (None: all of them), and ``values`` are those
    of the other axes. The bins of the other axes are computed once for all categories; the
    same as ``fill(h, category, *values, where=mask)`` for each category in turn."""
    plan = _plan(h, (next(iter(selections)), *values))
    storage = _storage(h) if plan is not None else None
    arrays = [p for p in plan or () if p[0] != "category"]
    if storage is None or not arrays or len(arrays) != len(values):
        for category, mask in selections.items():
            fill(h, category, *values, weight=weight, where=mask)
        return h
    buffers, strides = storage
    n = len(arrays[0][1])
    weights = _weights(weight, n)
    index, offset = _index(plan[1:], strides[1:], n)
    category_axis, (_, overflow) = h.axes[0], plan[0][3]
    for category, mask in selections.items():
        i = _category_index(category_axis, category)
        if i >= len(category_axis) and not overflow:
            continue
        _add(buffers, offset + i * strides[0], index, _mask(mask, n), weights)
    return h
