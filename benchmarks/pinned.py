"""One measurement in its own process, pinned to one core: ``python -m benchmarks.pinned SPEC``.

Figures taken in one long-lived process drift with what ran before (caches, JIT state,
allocator); a fresh process per system and a core of its own make rows comparable. The
parent (:func:`measure`) starts it under ``taskset``; the child warms up, then times runs
of at least ``min_run_s`` seconds each (as many calls as fit), and prints one JSON line
with the wall and the CPU time per call. On a quiet machine the two agree (CPU/wall near
1); on a shared one the process CPU time is the figure that other tenants disturb least.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

RESULT = "PINNED-RESULT "


def core() -> int:
    """The core the benchmarks run on: the last one this process may use."""
    return max(os.sched_getaffinity(0))


def loadavg() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def time_runs(call, min_run_s: float, runs: int) -> dict:
    """Seconds per call: warm-up, then ``runs`` runs of at least ``min_run_s`` each."""
    start = time.perf_counter()
    call()  # imports, JIT compilation, open files, page cache
    warmup = time.perf_counter() - start
    walls, cpus, calls = [], [], []
    for _ in range(runs):
        n, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
        while True:
            call()
            n += 1
            elapsed = time.perf_counter() - wall0
            if elapsed >= min_run_s:
                break
        walls.append(elapsed / n)
        cpus.append((time.process_time() - cpu0) / n)
        calls.append(n)
    return {
        "warmup_s": warmup,
        "wall": _stats(walls),
        "cpu": _stats(cpus),
        "cpu_over_wall": sum(cpus) / sum(walls),
        "calls_per_run": calls,
    }


def _stats(seconds: list[float]) -> dict:
    median = statistics.median(seconds)
    return {
        "median_s": median,
        "min_s": min(seconds),
        "max_s": max(seconds),
        "spread": (max(seconds) - min(seconds)) / median,
        "all_s": seconds,
    }


def measure(spec: dict, cpu: int | None = None) -> dict:
    """Run ``spec`` (system, analysis, files, params, chunk_size, min_run_s, runs) pinned."""
    cpu = core() if cpu is None else cpu
    before = loadavg()
    proc = subprocess.run(
        ["taskset", "-c", str(cpu), sys.executable, "-m", "benchmarks.pinned", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT)]
    if proc.returncode or not lines:
        raise RuntimeError(
            f"pinned measurement {spec['system']} {spec['analysis']} failed:\n{proc.stderr[-3000:]}"
        )
    return {**json.loads(lines[-1][len(RESULT) :]), "core": cpu, "loadavg": [before, loadavg()]}


def main(argv: list[str]) -> int:
    from benchmarks.workloads import build

    spec = json.loads(argv[0])
    call = build(
        spec["system"], spec["analysis"], spec["files"], spec["params"], spec.get("chunk_size")
    )
    result = time_runs(call, spec["min_run_s"], spec["runs"])
    print(RESULT + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
