"""One executor for every backend: serial, LocalCluster, any scheduler, KubeCluster.

Chunks are (file, entry range) work units. Results are merged as they arrive, in chunk
order (a result that arrives early waits for its predecessors), so that floating-point
sums, and hence histograms, are identical bin for bin whatever the backend and the order
in which workers finish. Dask reschedules the chunks of a worker that dies; bad input
raises an error naming file and entry range, or with ``skip_bad`` is reported chunk by
chunk so that processed + failed = total input events.

With the column cache, a re-run sends each worker the chunks it holds as a few batches
(one task each) instead of a task per chunk; a batch returns one outcome per chunk, merged
on the client in chunk order like any other, so batching changes neither the histograms nor
the accounting.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from distributed import Client, as_completed
from tqdm.auto import tqdm

from analysis_kernels.analyses import ANALYSES, get_analysis, merge
from analysis_kernels.executor.backends import open_backend
from analysis_kernels.executor.chunks import Chunk, expand_inputs, plan
from analysis_kernels.executor.harvest import HarvestSpec, gather
from analysis_kernels.executor.report import Report
from analysis_kernels.executor.task import (
    ChunkOutcome,
    held_chunks,
    process_batch,
    process_chunk,
)
from analysis_kernels.executor.user import (
    AnalysisCodeError,
    UserAnalysis,
    load_analysis,
    summarize,
    user_analysis,
)
from analysis_kernels.schema import TREE

DEFAULT_CHUNK_SIZE = 100_000
# Cached chunks per task on a re-run: few tasks, yet a worker lost or a slow analysis costs
# at most this many chunks' work again.
MAX_BATCH = 32

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "AnalysisCodeError",
    "HarvestSpec",
    "Report",
    "UserAnalysis",
    "gather",
    "run",
    "user_analysis",
]


def _serial(chunks: list[Chunk], task: dict) -> Iterator[ChunkOutcome]:
    for chunk in chunks:
        yield process_chunk(chunk=chunk, **task)


def _distributed(client: Client, chunks: list[Chunk], task: dict) -> Iterator[ChunkOutcome]:
    """Chunks as Dask tasks; with the column cache, a worker's cached chunks as one task.

    With the cache, each worker first says which chunks it holds; those go to it in batches of
    at most ``MAX_BATCH`` (a task each, its chunks' outcomes in one reply), so a re-run after
    changing a cut is a task or two per worker rather than one per chunk. Any other chunk is a task of its own, placed on a worker
    chosen by a stable hash of file and range, so that the next run finds it there. Every
    placement is a preference: a task goes elsewhere if its worker dies (it then reads the
    columns from storage).
    """
    workers, held = _held(client, chunks, task) if task["cache"] else ([], {})
    taken: set[int] = set()
    futures = []
    for worker, indices in held.items():
        taken.update(indices)
        n = -(-len(indices) // MAX_BATCH)  # batches of at most MAX_BATCH chunks, even sizes
        for part in range(n):
            batch = [
                chunks[i]
                for i in indices[part * len(indices) // n : (part + 1) * len(indices) // n]
            ]
            futures.append(
                client.submit(
                    process_batch,
                    chunks=batch,
                    **task,
                    workers=[worker],
                    allow_other_workers=True,
                    key=f"{_name(task['analysis'])}-batch-{batch[0].index}-{id(chunks):x}",
                )
            )

    def placement(chunk: Chunk) -> dict:
        if not workers:
            return {}
        home = workers[zlib.crc32(f"{chunk.file}:{chunk.entry_start}".encode()) % len(workers)]
        return {"workers": [home], "allow_other_workers": True}

    futures += [
        client.submit(
            process_chunk,
            chunk=chunk,
            **task,
            **placement(chunk),
            key=f"{_name(task['analysis'])}-chunk-{chunk.index}-{id(chunks):x}",
        )
        for chunk in chunks
        if chunk.index not in taken
    ]
    try:
        for future in as_completed(futures):
            result = future.result()
            yield from result if isinstance(result, list) else (result,)
            future.release()
    finally:
        client.cancel(futures)


def _held(client: Client, chunks: list[Chunk], task: dict) -> tuple[list[str], dict]:
    """The workers, and the chunks each holds in its column cache (a chunk held by two goes to
    the one that holds fewer), asked of every worker in one call."""
    answers = client.run(held_chunks, chunks=chunks, **task, on_error="return")
    found = {w: a for w, a in answers.items() if isinstance(a, list)}  # not a worker gone
    owner: dict[int, str] = {}
    for worker in sorted(found, key=lambda w: len(found[w])):
        for index in found[worker]:
            owner.setdefault(index, worker)
    batches: dict[str, list[int]] = {w: [] for w in found}
    for index in sorted(owner):
        batches[owner[index]].append(index)
    return sorted(found), {w: b for w, b in batches.items() if b}


def _name(analysis: str | UserAnalysis) -> str:
    return analysis.name if isinstance(analysis, UserAnalysis) else analysis


def resolve(
    analysis, columns=None, schema: str | None = None, params: Mapping[str, Any] | None = None
) -> tuple[str | UserAnalysis, dict[str, Any], Any]:
    """The analysis as workers get it, its parameters, and what summarizes its merged output.

    A registered name, ``file.py:NAME`` or ``module:NAME``, a function of the events, an
    object with ``process`` (a coffea processor included), or a :class:`UserAnalysis`.
    """
    if isinstance(analysis, str) and analysis in ANALYSES:
        if columns or schema:
            raise ValueError(f"analysis {analysis!r} declares its own columns and schema")
        spec = get_analysis(analysis)
        return analysis, spec.params(params), spec.summarize
    if isinstance(analysis, str):
        if ":" not in analysis:
            raise ValueError(
                f"unknown analysis {analysis!r}; choose one of {', '.join(ANALYSES)}, "
                "name your own as path/to/file.py:NAME or module:NAME, "
                "or pass a function or processor"
            )
        analysis = load_analysis(analysis)
    if not isinstance(analysis, UserAnalysis):
        analysis = user_analysis(analysis, columns, schema or "flat")
    code = analysis.load()
    return analysis, dict(params or {}), lambda output, _params: summarize(code, output)


class _OrderedMerge:
    """Merge outcomes in chunk order, holding back any that arrive early."""

    def __init__(self):
        self.output: dict[str, Any] = {}
        self.pending: dict[int, dict] = {}
        self.next = 0
        self.owned: set[int] = set()  # ids of the histograms this merge made

    def add(self, index: int, output: dict | None) -> None:
        self.pending[index] = output
        while self.next in self.pending:
            part = self.pending.pop(self.next)
            if part is not None:
                self.output = merge(self.output, part, self.owned) if self.output else part
            self.next += 1


def _progress_bar(total: int, name: str):
    """A tqdm bar of events, made only when asked for (a disabled one still costs its set-up)."""
    return tqdm(total=total, unit="ev", unit_scale=True, desc=name)


def run(
    analysis: Any,
    inputs: str | Iterable[str],
    executor: str | Client = "serial",
    params: Mapping[str, Any] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    skip_bad: bool = False,
    harvest: HarvestSpec | None = None,
    tree: str = TREE,
    progress: bool = False,
    cache: bool = False,
    columns: Iterable[str] | None = None,
    schema: str | None = None,
) -> Report:
    """Run ``analysis`` over ``inputs`` on ``executor`` and return the :class:`Report`.

    ``analysis`` is a registered name or the user's own code (see :func:`resolve`); for the
    latter, ``columns`` declares what it reads (otherwise it is read lazily, only the columns
    it touches) and ``schema="nanoaod"`` gives it coffea NanoEvents. With ``cache``, each
    worker keeps the columns it read, so that a re-run (say, after changing a cut) on the same
    cluster reads nothing from storage.
    """
    analysis, params, summarizer = resolve(analysis, columns, schema, params)
    name = _name(analysis)
    started = time.perf_counter()
    chunks, entries, unreadable = plan(expand_inputs(inputs), chunk_size, tree, skip_bad)
    task = {
        "analysis": analysis,
        "params": params,
        "skip_bad": skip_bad,
        "harvest": harvest,
        "tree": tree,
        "cache": cache,
    }
    merged = _OrderedMerge()
    per_file = {f: {"total": n, "processed": 0} for f, n in entries.items()}
    failed, manifest, columns_read = [], [], set()
    cpu = bytes_read = 0
    bar = _progress_bar(sum(entries.values()), name) if progress else None
    with open_backend(executor) as client:
        outcomes = _serial(chunks, task) if client is None else _distributed(client, chunks, task)
        for outcome in outcomes:
            chunk = outcome.chunk
            if outcome.error is None:
                per_file[chunk.file]["processed"] += chunk.events
                cpu += outcome.cpu_time
                bytes_read += outcome.bytes_read
                columns_read |= outcome.columns
                if outcome.harvested:
                    manifest.append(outcome.harvested)
            else:
                failed.append(
                    {
                        "file": chunk.file,
                        "entry_start": chunk.entry_start,
                        "entry_stop": chunk.entry_stop,
                        "events": chunk.events,
                        "error": outcome.error,
                    }
                )
            merged.add(chunk.index, outcome.output)
            if bar is not None:
                bar.update(chunk.events)
    if bar is not None:
        bar.close()
    output = merged.output
    processed = sum(f["processed"] for f in per_file.values())
    return Report(
        analysis=name,
        executor=executor if isinstance(executor, str) else f"client:{executor.scheduler.address}",
        params=params,
        output=output,
        events_total=sum(entries.values()),
        events_processed=processed,
        events_per_file=per_file,
        failed_chunks=sorted(failed, key=lambda f: (f["file"], f["entry_start"])),
        unreadable_files=unreadable,
        wall_time=time.perf_counter() - started,
        cpu_time=cpu,
        bytes_read=bytes_read,
        chunks=len(chunks),
        harvest_manifest=manifest if harvest else None,
        columns_read=sorted(columns_read),
        summarize=summarizer,
    )
