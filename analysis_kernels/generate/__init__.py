"""Synthetic NanoAOD-like datasets, one per analysis, with their truth recorded.

``generate_dataset`` writes ``<analysis>_<i>.root`` files and ``truth.json`` (generator
version, parameters, events per file, generated yields, and the analysis' truth such as true
chamber efficiencies). A dataset is a pure function of its parameters and seed: files are generated
in parallel processes, each from its own seeded stream.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from analysis_kernels.generate import adl, ds, dt, stop
from analysis_kernels.generate.writer import DEFAULT_CODEC, DEFAULT_LEVEL, compression, write_events

GENERATORS = {"ds": ds, "stop": stop, "dt": dt, "adl": adl}
# What the generator writes for a given spec, by version: raise it with any change to the
# generated values or layout, so that kept datasets (benchmarks.common.dataset) are made
# again. 1: unversioned, full-precision floats; 2: NanoAOD's float precision (precision.py).
GENERATOR_VERSION = 2
BASKET_EVENTS = 50_000
TRUTH_FILE = "truth.json"


@dataclass(frozen=True)
class DatasetSpec:
    analysis: str
    files: int = 2
    events_per_file: int = 100_000
    codec: str = DEFAULT_CODEC
    level: int = DEFAULT_LEVEL
    seed: int = 1


def _generator(analysis: str):
    try:
        return GENERATORS[analysis]
    except KeyError:
        raise ValueError(
            f"unknown analysis {analysis!r}; choose one of {', '.join(GENERATORS)}"
        ) from None


def _batches(spec: DatasetSpec, index: int, counts: dict):
    module = _generator(spec.analysis)
    first = index * spec.events_per_file
    for b, start in enumerate(range(0, spec.events_per_file, BASKET_EVENTS)):
        n = min(BASKET_EVENTS, spec.events_per_file - start)
        rng = np.random.default_rng([spec.seed, index, b])
        batch, batch_counts = module.generate_batch(rng, n, first + start + 1, spec.seed)
        for key, value in batch_counts.items():
            counts[key] = counts.get(key, 0) + value
        yield batch


def write_file(spec: DatasetSpec, index: int, path: str) -> dict:
    """Generate and write file ``index`` of the dataset; return its counts and size."""
    counts: dict = {}
    tmp = f"{path}.part"
    write_events(tmp, _batches(spec, index, counts), spec.codec, spec.level)
    os.replace(tmp, path)
    return {"file": os.path.basename(path), "bytes": os.path.getsize(path), **counts}


def bytes_per_event(
    analysis: str, codec: str, level: int, seed: int = 1, sample: int = 20_000
) -> float:
    """Measured compressed size of one event, from a small sample file."""
    spec = DatasetSpec(
        analysis, files=1, events_per_file=sample, codec=codec, level=level, seed=seed
    )
    with tempfile.TemporaryDirectory() as tmp:
        info = write_file(spec, 0, os.path.join(tmp, "sample.root"))
    return info["bytes"] / sample


def events_for_size(analysis: str, total_gb: float, files: int, codec: str, level: int) -> int:
    """Events per file so that ``files`` files add up to about ``total_gb``."""
    per_event = bytes_per_event(analysis, codec, level)
    return max(1, math.ceil(total_gb * 1e9 / per_event / files))


def generate_dataset(
    spec: DatasetSpec, output: str | Path, workers: int | None = None, progress: bool = True
) -> dict:
    """Write the dataset and its ``truth.json``; return the truth."""
    module = _generator(spec.analysis)
    compression(spec.codec, spec.level)  # refuse a bad codec before any work
    if spec.files < 1 or spec.events_per_file < 1:
        raise ValueError("files and events_per_file must be at least 1")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    paths = [str(output / f"{spec.analysis}_{i:04d}.root") for i in range(spec.files)]
    workers = workers or min(spec.files, os.cpu_count() or 1)
    bar = tqdm(
        total=spec.files * spec.events_per_file,
        unit="ev",
        unit_scale=True,
        desc=f"generate {spec.analysis}",
        disable=not progress,
    )
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(write_file, spec, i, p) for i, p in enumerate(paths)]
        per_file = []
        for future in futures:
            per_file.append(future.result())
            bar.update(spec.events_per_file)
    bar.close()
    totals: dict = {}
    for info in per_file:
        for key, value in info.items():
            if key != "file":
                totals[key] = totals.get(key, 0) + value
    truth = {
        "generator_version": GENERATOR_VERSION,
        "spec": asdict(spec),
        "files": per_file,
        "totals": totals,
        "truth": module.dataset_truth(spec.seed),
    }
    (output / TRUTH_FILE).write_text(json.dumps(truth, indent=1))
    return truth


def load_truth(directory: str | Path) -> dict:
    return json.loads((Path(directory) / TRUTH_FILE).read_text())
