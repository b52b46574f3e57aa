"""What every study shares: datasets made once, timing with repeats, the machine, results."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import time
from pathlib import Path

import uproot

from analysis_kernels import get_analysis
from analysis_kernels.generate import GENERATOR_VERSION, DatasetSpec, generate_dataset, load_truth

RESULTS = Path(__file__).parent / "results"


def percentile(values: list[float], q: int) -> float:
    """The ``q``-th percentile, interpolated between the measured values."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def results_dir() -> Path:
    path = RESULTS / dt.date.today().isoformat()
    path.mkdir(parents=True, exist_ok=True)
    return path


def machine() -> dict:
    """Where and with what a result was measured: CPU, load, and every library's version."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for dist in (
        "uproot", "awkward", "numpy", "numba", "hist", "dask", "distributed",
        "cramjam", "zstandard", "lz4", "coffea", "root",
    ):  # fmt: skip
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = None
    with open("/proc/cpuinfo") as f:
        info = f.read().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in info if "model name" in line), "")
    flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        # numpy runs its own AVX-512 code for float32 sinh, cosh and more where the CPU has it
        "simd": [f for f in ("avx2", "avx512f") if f in flags],
        "loadavg": [float(x) for x in load],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def _unused(path: Path) -> Path:
    """``path``, or the first of ``NAME-2``, ``NAME-3``, ... not taken: a second run on the same
    day keeps the first one's results, so the two can be compared (:mod:`benchmarks.compare`)."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def save(name: str, data: dict) -> Path:
    path = _unused(results_dir() / f"{name}.json")
    path.write_text(json.dumps({"machine": machine(), **data}, indent=1, default=float))
    return path


def dataset(
    generator: str, root: Path, files: int, events: int, codec: str = "ZSTD", seed: int = 1
) -> Path:
    """A generated dataset, made once and reused while its parameters and the generator's
    version match (a dataset of an older generator is made again)."""
    target = root / f"{generator}-{codec}-{files}x{events}-s{seed}"
    try:
        truth = load_truth(target)
        spec = truth["spec"]
        same = (spec["files"], spec["events_per_file"], spec["codec"]) == (files, events, codec)
        if same and truth.get("generator_version") == GENERATOR_VERSION:
            return target
    except (FileNotFoundError, KeyError):
        pass
    generate_dataset(
        DatasetSpec(generator, files, events, codec=codec, seed=seed), target, progress=False
    )
    return target


def timed(fn, repeat: int) -> dict:
    """Wall times of ``repeat`` calls; the minimum is the least disturbed by the machine."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"min": min(times), "median": statistics.median(times), "all": times}


def branch_bytes(analysis: str, files: list[str], kind: str) -> int:
    """Bytes of the declared branches in the files: ``kind`` is "compressed" or "uncompressed"."""
    branches = list(get_analysis(analysis).branches)
    total = 0
    for path in files:
        with uproot.open(path) as f:
            tree = f["Events"]
            total += sum(getattr(tree[b], f"{kind}_bytes") for b in branches)
    return total
