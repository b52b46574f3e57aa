"""NanoAOD conventions: branch types, collections, and reading one chunk with clear errors.

A collection ``X`` is a counter branch ``nX`` plus jagged branches ``X_<field>``, as in CMS
NanoAOD. Types are spelled like awkward's ("float32", "var * float32") so an analysis can
declare exactly what it reads, and a file that does not match is refused by name.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping

import awkward as ak
import numpy as np
import uproot

from analysis_kernels import baskets, grid, xz
from analysis_kernels.errors import InputError

TREE = "Events"

# uproot writes counters as int32; CMS NanoAOD stores them as uint32. Both are counters.
COUNTER_TYPES = frozenset({"int32", "uint32"})


def branch_type(branch) -> str:
    """The awkward-style type of one uproot branch, e.g. ``var * float32``."""
    interp = branch.interpretation
    if isinstance(interp, uproot.interpretation.jagged.AsJagged):
        return f"var * {np.dtype(interp.content.to_dtype).name}"
    if isinstance(interp, uproot.interpretation.numerical.AsDtype):
        return np.dtype(interp.to_dtype).name
    return type(interp).__name__


def tree_types(tree) -> dict[str, str]:
    """Branch name to type for every branch of a tree."""
    return {name: branch_type(tree[name]) for name in tree.keys()}  # noqa: SIM118 (uproot trees are not dicts)


def collections(types: Mapping[str, str]) -> dict[str, list[str]]:
    """Collection name to its jagged branches, for every ``nX`` counter present."""
    out: dict[str, list[str]] = {}
    for name, kind in types.items():
        if name.startswith("n") and kind in COUNTER_TYPES:
            prefix = name[1:] + "_"
            fields = [b for b, t in types.items() if b.startswith(prefix) and t.startswith("var")]
            if fields:
                out[name[1:]] = fields
    return out


_OPEN_FILES: OrderedDict[tuple, tuple[object, dict]] = OrderedDict()
MAX_OPEN_FILES = 32


def file_version(path: str) -> tuple[int, int] | None:
    """Size and modification time of a local file (None for a URL): a rewritten file is new."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def _open(path: str) -> tuple[object, dict]:
    """An open ROOT file and the trees taken from it so far, reused by later chunks of the
    same file in the same thread.

    Opening a file parses its header and streamers, which costs as much as reading a small
    chunk.
    """
    login = grid.login_name(path) if grid.is_remote(path) else None  # a new token: reopen
    key = (threading.get_ident(), path, file_version(path), login)
    if key in _OPEN_FILES:
        _OPEN_FILES.move_to_end(key)
        return _OPEN_FILES[key]
    # Local files through a memory map: less CPU per basket than the fsspec default (measured
    # in benchmarks/read_path.py). Never serve arrays from memory: I/O is measured. Grid URLs
    # with the user's token (analysis_kernels.grid).
    xz.install()  # uproot's own reads (fallbacks, lazy columns) decode LZMA with xz 5.8 too
    if grid.is_remote(path):
        file = grid.open_root(path, array_cache=None)
    else:
        handler = None if "://" in path else uproot.source.file.MemmapSource
        file = uproot.open(path, array_cache=None, handler=handler)
    opened = _OPEN_FILES[key] = (file, {})
    while len(_OPEN_FILES) > MAX_OPEN_FILES:
        _OPEN_FILES.popitem(last=False)[1][0].close()
    return opened


def open_tree(path: str, tree: str = TREE):
    """Open ``path`` and return its tree, or raise :class:`InputError` naming the file.

    The tree is kept with its open file: uproot would find the same object again, but through
    its key and a cache key, which cost more per chunk than the rest of the call.
    """
    try:
        file, trees = _open(path)
    except InputError:
        raise
    except FileNotFoundError as err:
        raise InputError("file not found", file=path) from err
    except Exception as err:  # uproot raises many types for a damaged file
        raise InputError(
            f"not a readable ROOT file ({type(err).__name__}: {err})", file=path
        ) from err
    found = trees.get(tree)
    if found is None:
        found = trees[tree] = _tree(file, tree, path)
    return found


def _tree(file, tree: str, path: str):
    """``file[tree]``, or :class:`InputError` naming what the file has instead."""
    try:
        return file[tree]
    except KeyError as err:
        raise InputError(
            f"no tree {tree!r} (the file has: {', '.join(file.keys()) or 'nothing'})", file=path
        ) from err
    except Exception as err:
        raise InputError(
            f"tree {tree!r} is damaged ({type(err).__name__}: {err})", file=path
        ) from err


def check_branches(tree, declared: Mapping[str, str], path: str) -> None:
    """Refuse a tree that lacks a declared branch or stores it with another type."""
    present = set(tree.keys())
    missing = [b for b in declared if b not in present]
    if missing:
        raise InputError(
            f"missing branch(es) {', '.join(missing)} in tree {tree.name!r}", file=path
        )
    for name, expected in declared.items():
        found = branch_type(tree[name])
        if found != expected:
            raise InputError(
                f"branch {name!r} has type {found!r}, the analysis expects {expected!r}", file=path
            )


def read_chunk(
    path: str, declared: Mapping[str, str], entry_start: int, entry_stop: int, tree: str = TREE
) -> tuple[ak.Array, int]:
    """Read exactly the declared branches of one entry range.

    Returns the events and the compressed size of the baskets they came from. Local files
    are read by the lean basket reader (:mod:`analysis_kernels.baskets`), which hands what it
    does not read to uproot branch by branch; remote files through uproot.
    """
    return read_tree(open_tree(path, tree), path, declared, entry_start, entry_stop)


def read_tree(
    events_tree, path: str, declared: Mapping[str, str], entry_start: int, entry_stop: int
) -> tuple[ak.Array, int]:
    """:func:`read_chunk` from a tree already open (``open_tree(path)``), for a caller that
    opened it to see what it is."""
    lean = None if grid.is_remote(path) else baskets.reader(events_tree, path)
    names = list(declared)
    if lean is None:
        check_branches(events_tree, declared, path)
        bytes_read = sum(basket_bytes(events_tree[n], entry_start, entry_stop) for n in names)
        events = read_arrays(events_tree, path, entry_start, entry_stop, names, library="ak")
    else:
        # Later chunks of an open file: the declared types were checked on the first one.
        signature = tuple(declared.items())
        if signature not in lean.checked:
            check_branches(events_tree, declared, path)
            lean.checked.add(signature)
        bytes_read = 0
        for name in names:
            known = lean.compressed_bytes(name, entry_start, entry_stop)
            bytes_read += (
                known
                if known is not None
                else basket_bytes(events_tree[name], entry_start, entry_stop)
            )
        events = lean.read(names, entry_start, entry_stop)
    if len(events) != entry_stop - entry_start:
        raise InputError(
            f"read {len(events)} events, expected {entry_stop - entry_start}",
            file=path,
            entry_start=entry_start,
            entry_stop=entry_stop,
        )
    return events, bytes_read


def read_arrays(source, path: str, entry_start: int, entry_stop: int, *args, **options):
    """``source.arrays(...)`` of one entry range; a basket that cannot be read or decompressed
    is bad input, named with its file and range."""
    try:
        return source.arrays(*args, entry_start=entry_start, entry_stop=entry_stop, **options)
    except Exception as err:
        raise InputError(
            f"cannot read or decompress ({type(err).__name__}: {err})",
            file=path,
            entry_start=entry_start,
            entry_stop=entry_stop,
        ) from err


def basket_bytes(branch, entry_start: int, entry_stop: int) -> int:
    """Bytes on storage of the baskets of ``branch`` that overlap an entry range.

    Baskets embedded in the TTree metadata (as in files recovered by ROOT, like the CMS
    Open Data sample) are counted by their stored size.
    """
    embedded = branch.embedded_baskets or []
    normal = branch.num_baskets - len(embedded)
    total = 0
    for i in range(branch.num_baskets):
        start, stop = branch.basket_entry_start_stop(i)
        if start < entry_stop and stop > entry_start:
            basket = embedded[i - normal] if i >= normal else None
            total += basket.data.nbytes if basket is not None else branch.basket_compressed_bytes(i)
    return total


def collection(events: ak.Array, name: str, fields: list[str] | None = None) -> ak.Array:
    """Zip the ``name_*`` branches of ``events`` into one jagged record array."""
    prefix = name + "_"
    names = fields or [f[len(prefix) :] for f in events.fields if f.startswith(prefix)]
    return ak.zip({f: events[prefix + f] for f in names})
