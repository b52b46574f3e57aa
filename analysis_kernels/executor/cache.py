"""Columns kept in worker memory between runs, for quasi-interactive analysis.

A re-run after changing a cut reads nothing from storage: each worker keeps the columns of
the chunks it processed, keyed by file (path, size, modification time), entry range and
branches, evicting the least recently used beyond a byte budget
(``FACILITY_CACHE_BYTES``, default 2 GB per worker process).
"""

from __future__ import annotations

import os
from collections import OrderedDict

import awkward as ak

from analysis_kernels.schema import file_version

_entries: OrderedDict[tuple, ak.Array] = OrderedDict()
_sizes: dict[tuple, int] = {}


def budget() -> int:
    return int(os.environ.get("FACILITY_CACHE_BYTES", 2 * 1024**3))


def key(path: str, entry_start: int, entry_stop: int, branches) -> tuple:
    return (path, file_version(path), entry_start, entry_stop, tuple(sorted(branches)))


def get(k: tuple) -> ak.Array | None:
    if k in _entries:
        _entries.move_to_end(k)
        return _entries[k]
    return None


def put(k: tuple, events: ak.Array) -> None:
    _entries[k] = events
    _sizes[k] = events.nbytes
    while sum(_sizes.values()) > budget() and len(_entries) > 1:
        old, _ = _entries.popitem(last=False)
        _sizes.pop(old)
