"""Compiled histogram fills: ``hist.Hist.fill`` without boost-histogram's per-call cost.

boost-histogram converts every value to float64 (a copy of each float32 column) and goes
through Python for each call; for a chunk's worth of values that is as long as reading a
float branch. :func:`fill` computes each entry's bin as boost-histogram's axes do and adds
into ``h.view(flow=True)`` in a numba loop, in input order, so the histogram is the same bin
for bin (tests/test_fill.py checks it against boost-histogram's own fill on edges, just
below and above them, the axis limits, infinities and NaN). The bin of a Regular axis is
``z = (x - min) / delta`` in float64 with ``min`` and ``delta`` as the axis stores them:
``int(z * size)`` for ``0 <= z < 1``, underflow for ``z < 0``, overflow otherwise (NaN
included), the upper edge in the last bin when the axis has no overflow bin. A Variable axis
takes ``upper_bound`` over its edges, an Integer axis ``value - min``, a Boolean axis the
value; a category axis (StrCategory, IntCategory) takes one value per call, as the DT
analysis fills one selection at a time. Anything else (growth, circular or transformed axes,
storages other than Double and Weight, float values on an Integer axis) goes to ``h.fill``.
"""

from __future__ import annotations

from collections.abc import Mapping

import boost_histogram._core.axis as _axis
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


@numba.njit(cache=True, inline="always")
def _storage_index(i, size, underflow, overflow):
    """The storage index (flow bins included) of axis index ``i`` (below 0: underflow, from
    ``size`` on: overflow), or -1 where the axis has no such bin. Selects, not branches, so
    that the loops using it vectorize."""
    ok = ((i >= 0) | (underflow != 0)) & ((i < size) | overflow)
    s = min(max(i, np.int64(-1)), np.int64(size)) + underflow
    return s if ok else np.int64(-1)


@numba.njit(cache=True, inline="always")
def _regular_bin(x, lo, delta, size, underflow, overflow):
    """The storage index of ``x`` on a Regular axis, or -1 where it is not filled: the
    float64 arithmetic and the outcome of boost-histogram's ``regular::index``."""
    z = (np.float64(x) - lo) / delta
    inside = (z >= 0.0) & (z < 1.0)
    i = np.int64((z if inside else 0.0) * size)  # may round up to size: overflow, as there
    if not inside:  # below, above, the upper edge, NaN
        if z < 0.0:
            i = np.int64(-1)
        elif not overflow and z == 1.0:
            i = np.int64(size - 1)
        else:
            i = np.int64(size)
    return _storage_index(i, size, underflow, overflow)


@numba.njit(cache=True)
def _regular_bins(values, lo, delta, size, underflow, overflow, stride):
    """The storage offset of each value on one Regular axis, -1 where it is not filled."""
    out = np.empty(len(values), dtype=np.int64)
    for k in range(len(values)):
        i = _regular_bin(values[k], lo, delta, size, underflow, overflow)
        out[k] = i * stride if i >= 0 else -1
    return out


@numba.njit(cache=True, inline="always")
def _combine(current, i, stride):
    return current + i * stride if (current >= 0) & (i >= 0) else np.int64(-1)


@numba.njit(cache=True)
def _add_regular(index, values, lo, delta, size, underflow, overflow, stride):
    for k in range(len(values)):
        i = _regular_bin(values[k], lo, delta, size, underflow, overflow)
        index[k] = _combine(index[k], i, stride)


@numba.njit(cache=True)
def _add_variable(index, values, edges, underflow, overflow, stride):
    size = len(edges) - 1
    last = edges[size]
    for k in range(len(values)):
        x = np.float64(values[k])
        # std::upper_bound: the number of edges not above x, less one (NaN: all of them);
        # counted without branches for the short edge lists of analyses
        if size < 64:
            i = np.int64(-1)
            for j in range(size + 1):
                i += not (x < edges[j])
        else:
            a, b = 0, size + 1
            while a < b:
                mid = (a + b) // 2
                if x < edges[mid]:
                    b = mid
                else:
                    a = mid + 1
            i = np.int64(a - 1)
        if not overflow and x == last:
            i = np.int64(size - 1)
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
    are skipped.

    Unit weights are counted first (in four interleaved tables, so that runs of one bin do
    not wait on each other) and each count added at once where that is exactly what adding
    1.0 that many times gives (an integer-valued bin below 2**52); weights are added one by
    one in input order, as boost-histogram does.
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
            if c == 0:
                continue
            v = flat[offset + b]
            if v == np.floor(v) and abs(v) + c < 2.0**52:
                flat[offset + b] = v + c
            else:
                for _ in range(c):
                    flat[offset + b] += 1.0
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
    kind = type(h._hist).__name__  # the C++ histogram: any_double, any_weight, ...
    if kind not in ("any_double", "any_weight"):
        return None
    view = np.asarray(h.view(flow=True))
    if not (view.flags.f_contiguous or view.flags.c_contiguous):
        return None
    flat = view.reshape(-1, order="F" if view.flags.f_contiguous else "C")
    if not np.shares_memory(flat, view):
        return None
    strides = [s // view.itemsize for s in view.strides]
    if kind == "any_double":
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


def _plan(h, values, scalar_category_only: bool = True):
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
            state = inner.__getstate__()
            plan.append(("regular", value, (float(state[-2]), float(state[-1]), len(ax)), flow))
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


def fill(h, *values, weight=None, where=None):
    """``h.fill(*values, weight=weight)`` for the entries where ``where`` is true (all when
    None), compiled where the axes and storage allow it; returns ``h``."""
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
        # The common case (one Regular axis): its bins without an index of zeros first.
        offset, regular = 0, None
        for (kind, value, spec, (uf, of)), stride in zip(plan, strides, strict=True):
            if kind != "category":
                regular = (value, *spec, uf, of, stride)
            elif value >= spec and not of:
                return h  # a category the axis does not have, and no overflow bin
            else:
                offset += value * stride
        _add(buffers, offset, _regular_bins(*regular), mask, weights)
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
