"""Measurements in processes of their own, pinned to one core, run in interleaved rounds.

Figures taken in one long-lived process drift with what ran before (caches, JIT state,
allocator); a fresh process per system and a core of its own make rows comparable. The
parent (:func:`measure_together`) starts one process per system under ``taskset``, all on
the same core; each warms up (imports, JIT compilation, open files, page cache) and then
waits. In each round the parent asks every process in turn for one run of at least
``min_run_s`` seconds (as many calls as fit), so the systems' runs alternate in time: a
period when the machine is busy slows every system, not the one that happened to be
measured then. Each run reports the wall and the CPU time per call; a system's runs are kept
in round order (``all_s``), so run ``i`` of every system of one call is from the same round,
and a ratio of two systems can be taken round by round (:func:`benchmarks.throughput.ratios`).
On a quiet machine the two agree (CPU/wall near 1); on a shared one the process CPU time is
the figure that other tenants disturb least.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

READY, RESULT = "PINNED-READY ", "PINNED-RESULT "


def core() -> int:
    """The core the benchmarks run on: the last one this process may use."""
    return max(os.sched_getaffinity(0))


def loadavg() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def one_run(call, min_run_s: float) -> dict:
    """Call until at least ``min_run_s`` seconds have passed: wall and CPU seconds per call."""
    n, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    while True:
        call()
        n += 1
        elapsed = time.perf_counter() - wall0
        if elapsed >= min_run_s:
            break
    return {"wall": elapsed / n, "cpu": (time.process_time() - cpu0) / n, "calls": n}


def _stats(seconds: list[float]) -> dict:
    median = statistics.median(seconds)
    return {
        "median_s": median,
        "min_s": min(seconds),
        "max_s": max(seconds),
        "spread": (max(seconds) - min(seconds)) / median,
        "all_s": seconds,
    }


def summary(warmup_s: float, runs: list[dict]) -> dict:
    walls, cpus = [r["wall"] for r in runs], [r["cpu"] for r in runs]
    return {
        "warmup_s": warmup_s,
        "wall": _stats(walls),
        "cpu": _stats(cpus),
        "cpu_over_wall": sum(cpus) / sum(walls),
        "calls_per_run": [r["calls"] for r in runs],
    }


def _read(proc: subprocess.Popen, log, prefix: str, name: str) -> str:
    for line in proc.stdout:
        if line.startswith(prefix):
            return line[len(prefix) :]
    proc.wait()
    log.seek(0)
    raise RuntimeError(f"pinned measurement {name} failed:\n{log.read()[-3000:]}")


def measure_together(specs: dict[str, dict], runs: int, cpu: int | None = None) -> dict:
    """One pinned process per spec (system, analysis, files, params, chunk_size,
    min_run_s), their runs interleaved over ``runs`` rounds; results by spec name, each
    system's runs in round order."""
    cpu = core() if cpu is None else cpu
    with contextlib.ExitStack() as stack:
        # stderr to files: a chatty child never blocks on a full pipe
        logs = {name: stack.enter_context(tempfile.TemporaryFile("w+")) for name in specs}
        procs = {
            name: subprocess.Popen(
                [
                    "taskset",
                    "-c",
                    str(cpu),
                    sys.executable,
                    "-m",
                    "benchmarks.pinned",
                    json.dumps(spec),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=logs[name],
                text=True,
            )
            for name, spec in specs.items()
        }
        try:
            warmup = {name: float(_read(p, logs[name], READY, name)) for name, p in procs.items()}
            results: dict[str, list] = {name: [] for name in procs}
            load = [loadavg()]
            names = list(procs)
            for r in range(runs):
                for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order
                    procs[name].stdin.write("run\n")
                    procs[name].stdin.flush()
                    results[name].append(json.loads(_read(procs[name], logs[name], RESULT, name)))
                load.append(loadavg())
        finally:
            for p in procs.values():
                p.stdin.close()
                p.wait()
    return {
        name: {**summary(warmup[name], results[name]), "core": cpu, "loadavg": load}
        for name in procs
    }


def main(argv: list[str]) -> int:
    from benchmarks.workloads import build

    spec = json.loads(argv[0])
    call = build(
        spec["system"], spec["analysis"], spec["files"], spec["params"], spec.get("chunk_size")
    )
    start = time.perf_counter()
    call()  # warm-up
    print(READY + str(time.perf_counter() - start), flush=True)
    for line in sys.stdin:
        if line.strip() == "run":
            print(RESULT + json.dumps(one_run(call, spec["min_run_s"])), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
