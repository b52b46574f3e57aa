"""Columns kept in worker memory between runs, for quasi-interactive analysis.

A re-run after changing a cut reads nothing from storage: each worker keeps the columns of
the chunks it processed, keyed by file (path, size, modification time), entry range,
branches and the form they are kept in, evicting the least recently used beyond a byte
budget (``FACILITY_CACHE_BYTES``, default 2 GB per worker process). A built-in analysis
may keep its chunks in the form its ``process`` reads them (say, the numpy buffers of a
compiled kernel), so that a re-run goes straight to the computation.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections import OrderedDict
from typing import Any

import awkward as ak
import numpy as np

from analysis_kernels.schema import file_version

_entries: OrderedDict[tuple, Any] = OrderedDict()
_sizes: dict[tuple, int] = {}
_total = 0
_lock = threading.Lock()  # workers may run several threads


def budget() -> int:
    return int(os.environ.get("FACILITY_CACHE_BYTES", 2 * 1024**3))


def key(path: str, entry_start: int, entry_stop: int, branches, form: str = "") -> tuple:
    """The key of a chunk's columns; ``form`` names a form other than the awkward array read."""
    return (path, file_version(path), entry_start, entry_stop, tuple(sorted(branches)), form)


def get(k: tuple) -> Any | None:
    with _lock:
        if k in _entries:
            _entries.move_to_end(k)
            return _entries[k]
    return None


def holds(k: tuple) -> bool:
    """Whether the columns of ``k`` are here (without refreshing their place in the LRU)."""
    return k in _entries


def _arrays(columns: Any):
    """The numpy arrays an awkward array, a dataclass or a tuple of them holds."""
    if isinstance(columns, np.ndarray):
        yield columns
    elif isinstance(columns, ak.Array):
        yield from ak.to_buffers(columns)[2].values()
    elif dataclasses.is_dataclass(columns):
        for f in dataclasses.fields(columns):
            yield from _arrays(getattr(columns, f.name))
    elif isinstance(columns, (tuple, list)):
        for item in columns:
            yield from _arrays(item)


def retained_bytes(columns: Any) -> int:
    """The memory that keeping ``columns`` holds: the buffers their arrays are views of (the
    lean reader puts all of a chunk's arrays in one buffer, so a few kept columns hold all of
    it), each counted once."""
    owners: dict[int, int] = {}
    for array in _arrays(columns):
        while isinstance(array.base, np.ndarray):
            array = array.base
        owners[id(array)] = array.nbytes
    return sum(owners.values())


def put(k: tuple, columns: Any) -> None:
    """Keep ``columns`` under ``k``, counted by what they hold; evict beyond the budget."""
    global _total
    size, limit = retained_bytes(columns), budget()
    with _lock:
        if k in _entries:
            _total -= _sizes.pop(k)
        _entries[k] = columns
        _sizes[k] = size
        _total += size
        while _total > limit and len(_entries) > 1:
            old, _ = _entries.popitem(last=False)
            _total -= _sizes.pop(old)


def clear() -> None:
    global _total
    with _lock:
        _entries.clear()
        _sizes.clear()
        _total = 0
