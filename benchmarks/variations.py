"""The cost of systematic variations: one stop pass with 100 variations against the nominal
alone, both in pinned processes interleaved as the throughput rows (:mod:`benchmarks.pinned`).

The seed paper's Figure 4 (study 1) draws the whole curve; this gives the one ratio the
target is about, with the harness' spread.
"""

from __future__ import annotations

from pathlib import Path

from analysis_kernels.executor.chunks import expand_inputs
from benchmarks.common import dataset, save
from benchmarks.pinned import measure_together as pinned

COUNTS = [1, 20, 100]


def measure(
    data_root: Path, events: int, min_run_s: float = 3.0, runs: int = 5, clock: str = "wall"
) -> dict:
    files = expand_inputs(dataset("stop", data_root, 1, events))
    specs = {
        n: {
            "system": "ours",
            "analysis": "stop",
            "files": files,
            "params": {"n_variations": n},
            "min_run_s": min_run_s,
        }
        for n in COUNTS
    }
    times = {n: {**t, **t[clock]} for n, t in pinned(specs, runs).items()}
    result = {
        "events": events,
        "clock": clock,
        "runs": runs,
        "min_run_s": min_run_s,
        "times": times,
        "cost_100_over_1": times[100]["median_s"] / times[1]["median_s"],
        "quoted": all(t["spread"] <= 0.10 for t in times.values()),
    }
    for n, t in times.items():
        print(f"  stop, {n:3d} variations: {t['median_s']:.3f} s  spread {100 * t['spread']:.1f}%")
    print(f"  100 variations / nominal: {result['cost_100_over_1']:.2f}")
    save("variations", result)
    return result
