"""What an analysis is: the branches it reads, a function per chunk, and a summary.

``process`` maps one chunk of events to histograms and counters that merge by addition,
plus optionally the selected events to harvest. ``summarize`` turns the merged output into
numbers a physicist reads (fitted yields, efficiencies, signal-region yields).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import boost_histogram._core.hist as _core
import hist
import numpy as np
from boost_histogram import Histogram

from analysis_kernels.columns import jagged

Output = dict[str, Any]
ChunkResult = tuple[Output, ak.Array | None]


@dataclass(frozen=True)
class Analysis:
    name: str
    title: str
    branches: Mapping[str, str]
    process: Callable[..., ChunkResult]
    summarize: Callable[[Output, Mapping[str, Any]], dict]
    figures: str  # the function of analysis_kernels.plots that draws this analysis
    headline: Callable[[dict], list[str]] = lambda summary: []
    defaults: Mapping[str, Any] = field(default_factory=dict)
    truth_branches: Mapping[str, str] = field(default_factory=dict)
    dataset: str = ""  # the generator whose data it reads, when not named like the analysis

    @property
    def generator(self) -> str:
        return self.dataset or self.name

    def params(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The analysis' parameters: defaults overridden by ``given``, unknown names refused."""
        given = dict(given or {})
        unknown = set(given) - set(self.defaults)
        if unknown:
            raise ValueError(
                f"analysis {self.name!r} has no parameter(s) {', '.join(sorted(unknown))}; "
                f"it takes: {', '.join(self.defaults) or 'none'}"
            )
        return {**self.defaults, **given}

    def plot(self, output: Output, summary: dict, directory: str | Path) -> list[Path]:
        """Draw the analysis' figures into ``directory``; return their paths."""
        from analysis_kernels import plots

        return getattr(plots, self.figures)(output, summary, Path(directory))

    def branches_for(self, params: Mapping[str, Any]) -> dict[str, str]:
        """Exactly the branches this run reads: MC-truth branches only when asked for."""
        extra = self.truth_branches if params.get("mc_truth") else {}
        return {**self.branches, **extra}


def merge(a: Output, b: Output, owned: set[int] | None = None) -> Output:
    """Add two outputs key by key (histograms, numbers, nested dicts).

    ``owned``, for a running sum: the ids of histograms of ``a`` that the caller's merges
    made, added into in place; the sums this call makes join it. ``a + b`` copies ``a``, so
    a sum over N chunks without it copies N times; with it, once per histogram. Neither
    input's own histograms are changed.
    """
    out = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
        elif isinstance(value, dict):
            out[key] = merge(out[key], value, owned)
        elif owned is not None and id(out[key]) in owned:
            out[key] = _add_into(out[key], value)
        else:
            out[key] = _sum(out[key], value)
            if owned is not None and isinstance(out[key], Histogram):
                owned.add(id(out[key]))
    return out


# Classes whose arithmetic is boost-histogram's own (a subclass may redefine it), and the
# storages whose C++ histograms add bin by bin.
_PLAIN = frozenset({Histogram, hist.Hist})
_ADDABLE = frozenset({_core.any_double, _core.any_weight, _core.any_int64})


def _simple(h) -> bool:
    """Whether ``h`` is a histogram of a plain class and storage with no axis that grows
    (a sum could change its bins; the copy of such an axis is made otherwise)."""
    return type(h) in _PLAIN and type(h._hist) in _ADDABLE and not h._has_growth


def _plain(a, b) -> bool:
    """Whether ``a + b`` is the C++ histograms' own sum: two simple histograms of one
    class and storage."""
    return type(a) is type(b) and _simple(a) and type(a._hist) is type(b._hist)


def _add_into(a, b):
    """``a += b``. For plain histograms the C++ ``+=`` alone (it refuses other axes with
    the same error): boost-histogram's Python around it takes 8 us, 16 times the sum."""
    if not _plain(a, b):
        a += b
        return a
    a._hist += b._hist
    a._variance_known = False  # as boost-histogram marks any sum
    return a


def _sum(a, b):
    """``a + b``: for plain histograms a copy of ``a`` (its class, attributes, axes with
    their own metadata) added into, without boost-histogram's generic copy (25 us)."""
    if not _plain(a, b):
        return a + b
    return _add_into(clone(a), b)


def clone(h: Histogram) -> Histogram:
    """``copy.copy(h)`` (each axis' metadata copied too), for a simple histogram in a
    quarter of the time: for histograms made per chunk from an empty one."""
    if not _simple(h):
        return copy.copy(h)
    new = object.__new__(type(h))
    new._hist = copy.copy(h._hist)  # copies each axis' metadata dict
    new.__dict__ = dict(h.__dict__)
    new.axes = type(h.axes)(
        type(axis)._convert_cpp(new._hist.axis(i)) for i, axis in enumerate(h.axes)
    )
    return new


def _content(events: ak.Array, name: str):
    """The column ``name`` of a chunk as a layout, without awkward's per-call dispatch (a
    read chunk is a RecordArray of its branches); through ``events[name]`` otherwise."""
    layout = events.layout
    if isinstance(layout, ak.contents.RecordArray):
        return layout.content(name)
    return events[name]


def column(events: ak.Array, name: str) -> np.ndarray:
    """A flat (one value per event) column of a chunk as a numpy array, without a copy."""
    content = _content(events, name)
    if isinstance(content, ak.contents.NumpyArray):
        return np.asarray(content.data)
    return ak.to_numpy(content)


def columns(events: ak.Array, prefix: str, fields: list[str]) -> tuple[np.ndarray, ...]:
    """Offsets and the flat values of some fields of a jagged collection (``prefix_field``
    branches, one offsets array for all, starting at 0), for compiled kernels."""
    offsets, first = jagged(_content(events, f"{prefix}_{fields[0]}"))
    return offsets, first, *(jagged(_content(events, f"{prefix}_{f}"))[1] for f in fields[1:])


def records(fields: Mapping[str, np.ndarray]) -> ak.Array:
    """Flat numpy columns of equal length as an array of records, as ``ak.zip`` makes them,
    without its broadcasting (for snapshots)."""
    arrays = [np.asarray(v) for v in fields.values()]
    length = len(arrays[0]) if arrays else 0
    contents = [ak.contents.NumpyArray(a) for a in arrays]
    return ak.Array(ak.contents.RecordArray(contents, list(fields), length=length))
