"""The work a worker does for one chunk (read, process, optionally harvest), or for a batch
of chunks whose columns it holds in its cache."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from analysis_kernels.analyses import get_analysis
from analysis_kernels.errors import InputError
from analysis_kernels.executor import cache as column_cache
from analysis_kernels.executor import lazy, user
from analysis_kernels.executor.allocator import keep_freed_memory
from analysis_kernels.executor.chunks import Chunk
from analysis_kernels.executor.harvest import HarvestSpec, write_snapshot
from analysis_kernels.schema import TREE, open_tree, read_tree


@dataclass
class ChunkOutcome:
    chunk: Chunk
    output: dict[str, Any] | None = None
    bytes_read: int = 0
    cpu_time: float = 0.0
    harvested: dict | None = None
    error: str | None = None
    columns: frozenset[str] = frozenset()
    details: dict = field(default_factory=dict)


def process_chunk(
    analysis: str | user.UserAnalysis,
    chunk: Chunk,
    params: dict,
    skip_bad: bool = False,
    harvest: HarvestSpec | None = None,
    tree: str = TREE,
    cache: bool = False,
) -> ChunkOutcome:
    """Process one chunk. A bad input raises, or with ``skip_bad`` comes back as a failure.

    Errors in the analysis code itself always raise: skipping is for bad data, not bugs.
    """
    keep_freed_memory()  # this chunk's arrays reuse the pages of the last one's
    if isinstance(analysis, user.UserAnalysis):
        return _process_user(analysis, chunk, params, skip_bad, harvest, tree, cache)
    analysis_name, analysis = analysis, get_analysis(analysis)
    branches = analysis.branches_for(params)
    # The form the cache keeps: what ``process`` reads, when the analysis says how to make it.
    prepare = getattr(analysis.process, "prepare", None)
    start = time.thread_time()
    key = _builtin_key(analysis_name, chunk, branches, prepare) if cache else None
    events, bytes_read = (column_cache.get(key) if cache else None), 0
    if events is None:
        try:
            events, bytes_read = _read_typed(chunk, branches, tree)
        except InputError as err:
            return _bad_input(chunk, err, skip_bad)
        if cache:
            if prepare is not None:
                events = prepare(events)
            column_cache.put(key, events)
    output, snapshot = analysis.process(events, **params)
    harvested = write_snapshot(harvest, analysis_name, chunk, snapshot) if harvest else None
    return ChunkOutcome(
        chunk,
        output,
        bytes_read,
        time.thread_time() - start,
        harvested,
        columns=frozenset(branches),
    )


def _chunk_key(chunk: Chunk, branches, form: str = "") -> tuple:
    return column_cache.key(chunk.file, chunk.entry_start, chunk.entry_stop, branches, form)


def _builtin_key(name: str, chunk: Chunk, branches, prepare) -> tuple:
    return _chunk_key(chunk, branches, name if prepare is not None else "")


def process_batch(chunks: list[Chunk], **task) -> list[ChunkOutcome]:
    """Several chunks in one task, each with its own outcome, in the order given.

    The executor sends a worker, in one task, the chunks whose columns it holds, which makes a
    re-run a handful of tasks instead of one per chunk. A chunk whose columns are gone (evicted,
    or the batch was moved to another worker) is read as usual; bad input raises naming its file
    and entry range, or with ``skip_bad`` is that chunk's failure, and the batch goes on.
    """
    return [process_chunk(chunk=chunk, **task) for chunk in chunks]


def held_chunks(
    analysis: str | user.UserAnalysis, chunks: list[Chunk], params: dict, cache: bool = True, **_
) -> list[int]:
    """Indices of the ``chunks`` whose columns this process' cache holds, for this analysis.

    Run on every worker before a run with the cache; a user's analysis that reads lazily or
    through NanoEvents keeps no whole chunks, so it has none.
    """
    if not cache:
        return []
    if isinstance(analysis, user.UserAnalysis):
        if analysis.schema == "nanoaod" or not analysis.columns:
            return []
        keys = [(c, _chunk_key(c, analysis.columns)) for c in chunks]
    else:
        spec = get_analysis(analysis)
        branches = spec.branches_for(params)
        prepare = getattr(spec.process, "prepare", None)
        keys = [(c, _builtin_key(analysis, c, branches, prepare)) for c in chunks]
    return [c.index for c, k in keys if column_cache.holds(k)]


def _read_typed(chunk: Chunk, branches: dict[str, str], tree: str) -> tuple:
    """A built-in analysis' branches with their declared types, from a TTree or an RNTuple."""
    span = (chunk.entry_start, chunk.entry_stop)
    source = open_tree(chunk.file, tree)
    if lazy.is_ttree(source):
        return read_tree(source, chunk.file, branches, *span)
    events = lazy.read_columns(source, chunk.file, list(branches), *span)
    for name, expected in branches.items():
        found = str(events[name].type.content)
        if found != expected:
            raise InputError(
                f"column {name!r} has type {found!r}, the analysis expects {expected!r}",
                file=chunk.file,
            )
    return events, 0


def _bad_input(chunk: Chunk, err: InputError, skip_bad: bool) -> ChunkOutcome:
    if not skip_bad:
        raise err
    return ChunkOutcome(chunk, error=str(err), details={"traceback": traceback.format_exc(limit=3)})


def _from_storage(err: BaseException) -> bool:
    """Whether the error arose while uproot read or decoded data (a lazy column's first use)."""
    tb = err.__traceback__
    while tb is not None:
        if "/uproot/" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def _declared(columns, source, chunk: Chunk, cache: bool) -> tuple:
    """Declared columns, from the worker's cache or from storage: events and bytes read."""
    key = _chunk_key(chunk, columns)
    events = column_cache.get(key) if cache else None
    if events is not None:
        return events, 0
    span = (chunk.entry_start, chunk.entry_stop)
    events = lazy.read_columns(source, chunk.file, columns, *span)
    if cache:
        column_cache.put(key, events)
    return events, lazy.storage_bytes(source, columns, *span)


def _process_user(
    analysis: user.UserAnalysis,
    chunk: Chunk,
    params: dict,
    skip_bad: bool,
    harvest: HarvestSpec | None,
    tree: str,
    cache: bool,
) -> ChunkOutcome:
    """A user's analysis on one chunk: declared columns read up front, or lazily what it touches.

    When the code raises, the columns it read (all of them, when the error came from reading)
    are read again at once: a damaged basket is then bad input (named, skippable); otherwise
    the error is the code's, sent back whole.
    """
    start = time.thread_time()
    code = analysis.load()
    span = (chunk.entry_start, chunk.entry_stop)
    reader = log = None
    try:
        source = open_tree(chunk.file, tree)
        if analysis.schema == "nanoaod":
            log = []
            events = lazy.nanoevents(chunk.file, tree, *span, log)
        elif analysis.columns:
            events, bytes_read = _declared(analysis.columns, source, chunk, cache)
        else:
            reader = lazy.LazyChunk(source, chunk.file, *span, cache)
            events = reader.events
    except InputError as err:
        return _bad_input(chunk, err, skip_bad)

    def read() -> set[str]:
        if reader is not None:
            return reader.read
        return lazy.logged_names(log, source) if log is not None else set()

    try:
        output, selected = user.call(code, events, params)
    except Exception as err:
        suspects = lazy.names(source) if _from_storage(err) else sorted(read())
        try:
            if suspects:  # declared columns were read before the code ran
                lazy.read_columns(source, chunk.file, suspects, *span)
        except InputError as bad:
            return _bad_input(chunk, bad, skip_bad)
        raise user.code_error(analysis.name, chunk, err) from None
    if reader is not None:
        bytes_read, columns = lazy.storage_bytes(source, read(), *span), reader.touched
        if cache:
            reader.keep()
    elif log is not None:
        bytes_read, columns = lazy.storage_bytes(source, read(), *span), read()
    else:
        columns = set(analysis.columns)
    harvested = None
    if harvest and selected is not None:
        harvested = write_snapshot(harvest, analysis.name, chunk, selected)
    cpu = time.thread_time() - start
    return ChunkOutcome(chunk, output, bytes_read, cpu, harvested, columns=frozenset(columns))
