"""Study 1 (seed paper Figure 4): cumulative time versus number of systematic variations.

Legacy serial: ROOT RDataFrame, one event loop per variation, as the seed's standard
workflow. Ours: one read, all variations in memory; serially, on a two-worker LocalCluster,
and on separate ``dask scheduler`` / ``dask worker`` processes over TCP.
"""

from __future__ import annotations

import time
from pathlib import Path

from distributed import Client, LocalCluster

from analysis_kernels import run
from analysis_kernels.executor.chunks import expand_inputs
from analysis_kernels.executor.processes import DaskProcesses
from benchmarks.common import dataset, save, timed

GRID = [1, 10, 25, 50, 100]


def _legacy(files: list[str], n_max: int) -> list[float]:
    """Cumulative wall time after each variation, one RDataFrame event loop per variation."""
    from analysis_kernels.analyses.systematics import variations
    from benchmarks.peers import rdf

    cumulative, total = [], 0.0
    for i in range(1, n_max + 1):
        start = time.perf_counter()
        # One loop for variation i alone (its name is the last of the first i).
        rdf.stop_variation(files, variations(i)[-1])
        total += time.perf_counter() - start
        cumulative.append(total)
    return cumulative


def measure(data_root: Path, events: int, files: int, repeat: int, chunk_size: int) -> dict:
    data = dataset("stop", data_root, files, events)
    paths = expand_inputs(data)
    legacy = _legacy(paths, max(GRID))
    curves = {"legacy serial (RDataFrame, one loop per variation)": [legacy[n - 1] for n in GRID]}
    curves["ours serial"] = [
        timed(
            lambda n=n: run("stop", data, params={"n_variations": n}, chunk_size=chunk_size), repeat
        )["min"]
        for n in GRID
    ]
    backends = {
        "ours LocalCluster (2 workers)": lambda: LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=None, host="127.0.0.1"
        ),
        "ours distributed (2 worker processes, TCP)": lambda: DaskProcesses(n_workers=2),
    }
    for name, make_cluster in backends.items():
        with make_cluster() as cluster, Client(cluster.scheduler_address) as client:
            run("stop", data, executor=client, params={"n_variations": 1}, chunk_size=chunk_size)
            curves[name] = [
                timed(
                    lambda n=n, c=client: run(
                        "stop", data, executor=c, params={"n_variations": n}, chunk_size=chunk_size
                    ),
                    repeat,
                )["min"]
                for n in GRID
            ]
    for name, values in curves.items():
        print(
            f"  {name:45s} "
            + "  ".join(f"N={n}: {v:6.2f}s" for n, v in zip(GRID, values, strict=True))
        )
    ours = curves["ours serial"]
    result = {
        "grid": GRID,
        "events": events * files,
        "curves": curves,
        "cost_100_over_1": ours[GRID.index(100)] / ours[0],
    }
    save("systematics", result)
    return result
