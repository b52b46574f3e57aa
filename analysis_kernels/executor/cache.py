"""Columns kept in worker memory between runs, for quasi-interactive analysis.

A re-run after changing a cut reads nothing from storage: each worker keeps the columns of
the chunks it processed, keyed by file (path, size, modification time), entry range,
branches and the form they are kept in, evicting the least recently used beyond a byte
budget (``FACILITY_CACHE_BYTES``, default 2 GB per worker process). A built-in analysis
may keep its chunks in the form its ``process`` reads them (say, the numpy buffers of a
compiled kernel), so that a re-run goes straight to the computation.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

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


def put(k: tuple, columns: Any) -> None:
    """Keep ``columns`` (anything with ``nbytes``) under ``k``; evict beyond the budget."""
    global _total
    size, limit = int(columns.nbytes), budget()
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
