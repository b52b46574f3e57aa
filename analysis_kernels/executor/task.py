"""The work a worker does for one chunk: read, process, optionally harvest."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from analysis_kernels.analyses import get_analysis
from analysis_kernels.errors import InputError
from analysis_kernels.executor import cache as column_cache
from analysis_kernels.executor.chunks import Chunk
from analysis_kernels.executor.harvest import HarvestSpec, write_snapshot
from analysis_kernels.schema import TREE, read_chunk


@dataclass
class ChunkOutcome:
    chunk: Chunk
    output: dict[str, Any] | None = None
    bytes_read: int = 0
    cpu_time: float = 0.0
    harvested: dict | None = None
    error: str | None = None
    details: dict = field(default_factory=dict)


def process_chunk(
    analysis_name: str,
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
    analysis = get_analysis(analysis_name)
    branches = analysis.branches_for(params)
    start = time.thread_time()
    key = (
        column_cache.key(chunk.file, chunk.entry_start, chunk.entry_stop, branches)
        if cache
        else None
    )
    events, bytes_read = (column_cache.get(key) if cache else None), 0
    if events is None:
        try:
            events, bytes_read = read_chunk(
                chunk.file, branches, chunk.entry_start, chunk.entry_stop, tree
            )
        except InputError as err:
            if not skip_bad:
                raise
            return ChunkOutcome(
                chunk, error=str(err), details={"traceback": traceback.format_exc(limit=3)}
            )
        if cache:
            column_cache.put(key, events)
    output, snapshot = analysis.process(events, **params)
    harvested = write_snapshot(harvest, analysis_name, chunk, snapshot) if harvest else None
    return ChunkOutcome(chunk, output, bytes_read, time.thread_time() - start, harvested)
