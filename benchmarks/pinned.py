"""Measurements in processes of their own, pinned to one core, run in interleaved rounds.

Figures taken in one long-lived process drift with what ran before (caches, JIT state,
allocator); a fresh process per system and a core of its own make rows comparable. The
parent (:func:`measure_rounds`) starts, for every round, one process per system under
``taskset``, all on the same core; each warms up (:func:`warm_up`: a first call, then
calls for ``WARM_UP_S`` of CPU time) and then waits. A round gives every system one run of
at least ``min_run_s`` seconds, made of ``slices`` pieces that alternate between the systems
(as many calls as fit in each piece, at least one): this VM's speed wanders on a scale of
seconds, so runs taken back to back as whole blocks of 3 s differed by up to 30% in their
ratio, where pieces of a fraction of a second see the same machine. Rounds go round-major
over all the sets measured (every analysis of a codec), so a row's runs come from as many
processes and moments as it has rounds. Each run reports the wall and the CPU time per call;
a system's runs are kept in round order (``all_s``), so run ``i`` of every system of one set
is from the same round, and a ratio of two systems can be taken round by round
(:func:`benchmarks.throughput.ratios`).
On a quiet machine the two agree (CPU/wall near 1); on a shared one the process CPU time is
the figure that other tenants disturb least.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

READY, RESULT = "PINNED-READY ", "PINNED-RESULT "
SLICES = 8  # pieces of a run
# CPU seconds of calls after the first, before a round: coffea's ADL Q5 ran 6% slower
# after 1 s (4.7-5.0 million events/s against 5.0-5.2 after 3 s; its heap still growing),
# the other systems the same
WARM_UP_S = 3.0
# systems whose kernels numba compiles and caches on disk (ours' analyses, the lean reader)
COMPILED = ("ours", "io-floor")


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


def joined(pieces: list[dict]) -> dict:
    """One run from its pieces: the time per call over all their calls."""
    calls = sum(p["calls"] for p in pieces)
    return {
        "wall": sum(p["wall"] * p["calls"] for p in pieces) / calls,
        "cpu": sum(p["cpu"] * p["calls"] for p in pieces) / calls,
        "calls": calls,
        "pieces": len(pieces),
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


def summary(runs: list[dict]) -> dict:
    walls, cpus = [r["wall"] for r in runs], [r["cpu"] for r in runs]
    return {
        "first_call_s": [r["first_call_s"] for r in runs],
        "pids": [r["pid"] for r in runs],
        "started": [r["started"] for r in runs],
        "wall": _stats(walls),
        "cpu": _stats(cpus),
        "cpu_over_wall": sum(cpus) / sum(walls),
        "calls_per_run": [r["calls"] for r in runs],
        "pieces_per_run": [r["pieces"] for r in runs],
    }


def _length(pieces: list[dict]) -> float:
    """Seconds a run's pieces have taken so far: a system whose one call outlasts a piece
    (RDataFrame's stop analysis) reaches its minimum in fewer pieces, and stops there."""
    return sum(p["wall"] * p["calls"] for p in pieces)


def _read(proc: subprocess.Popen, log, prefix: str, name: str) -> str:
    for line in proc.stdout:
        if line.startswith(prefix):
            return line[len(prefix) :]
    proc.wait()
    log.seek(0)
    raise RuntimeError(f"pinned measurement {name} failed:\n{log.read()[-3000:]}")


def _round(
    ask, specs: dict[str, dict], names: list[str], slices: int, first: int = 0
) -> dict[str, dict]:
    """One run of every system, in pieces of ``min_run_s / slices`` that alternate (the
    order rotating piece by piece) until each system has run its ``min_run_s``."""
    pieces: dict[str, list] = {name: [] for name in names}
    for s in itertools.count(first):
        order = names[s % len(names) :] + names[: s % len(names)]
        short = [n for n in order if _length(pieces[n]) < specs[n]["min_run_s"]]
        if not short:
            return {name: joined(pieces[name]) for name in names}
        for name in short:
            pieces[name].append(ask(name, specs[name]["min_run_s"] / slices))


def _command(spec: dict, *options: str) -> list[str]:
    """The command line of a measuring process (:func:`main`): its options, then the spec."""
    return [sys.executable, "-m", "benchmarks.pinned", *options, json.dumps(spec)]


@contextlib.contextmanager
def _warmed_up(specs: dict[str, dict], cpu: int):
    """One process per spec, pinned to ``cpu`` and warmed up: yields the function that asks
    one for a piece of ``seconds`` and what each reported when ready (its pid, its first
    call's seconds)."""
    with contextlib.ExitStack() as stack:
        # stderr to files: a chatty child never blocks on a full pipe
        logs = {name: stack.enter_context(tempfile.TemporaryFile("w+")) for name in specs}
        procs = {
            name: subprocess.Popen(
                ["taskset", "-c", str(cpu), *_command(spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=logs[name],
                text=True,
            )
            for name, spec in specs.items()
        }
        try:
            ready = {
                name: json.loads(_read(p, logs[name], READY, name)) for name, p in procs.items()
            }

            def ask(name: str, seconds: float) -> dict:
                procs[name].stdin.write(f"run {seconds!r}\n")
                procs[name].stdin.flush()
                return json.loads(_read(procs[name], logs[name], RESULT, name))

            yield ask, ready
        finally:
            for p in procs.values():
                p.stdin.close()
                p.wait()


def prime(specs: list[dict]) -> None:
    """Build and call each spec once in a process of its own, before any round, so that
    numba's cache on disk holds every kernel and every measured process loads them alike.
    In a run on an empty cache, the first round's processes compiled (DT 22 s, Q8 22 s);
    Q8's then ran at 1.47 times the floor's time, against 1.28-1.31 in the other four
    rounds (DT's and Q6's were not slower)."""
    for spec in specs:
        done = subprocess.run(
            _command(spec, "--once"),
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise RuntimeError(
                f"priming {spec['system']} on {spec['analysis']} failed:\n{done.stderr[-3000:]}"
            )


def measure_rounds(
    sets: dict[str, dict[str, dict]],
    runs: int,
    cpu: int | None = None,
    slices: int = SLICES,
    progress=None,
) -> dict[str, dict[str, dict]]:
    """Every set of specs (system, analysis, files, params, chunk_size, min_run_s) measured
    in ``runs`` rounds, round-major: round ``r`` of every set before round ``r + 1`` of any,
    each round in fresh processes warmed up for it. A peer's speed differed between
    processes and between moments of one machine by more than within one process (ROOT's ADL
    Q1: 16-24 million events/s in three runs half an hour apart, 2-3% within each): a median
    over rounds of several processes, spread over the whole measurement, is what a second
    measurement reproduces. Results by set and spec name, each system's runs in round
    order, with the pid, first call and start of each round's process. The kernels are
    compiled first (:func:`prime`)."""
    cpu = core() if cpu is None else cpu
    prime(
        [spec for specs in sets.values() for spec in specs.values() if spec["system"] in COMPILED]
    )
    out = {key: {name: [] for name in specs} for key, specs in sets.items()}
    load = {key: [] for key in sets}
    for r in range(runs):
        for key, specs in sets.items():
            started = time.monotonic()
            with _warmed_up(specs, cpu) as (ask, ready):
                load[key].append(loadavg())
                for name, run in _round(ask, specs, list(specs), slices, first=r).items():
                    out[key][name].append({**run, **ready[name], "started": started})
            if progress:
                progress(r, key)
    return {
        key: {
            name: {**summary(runs_of), "core": cpu, "loadavg": load[key]}
            for name, runs_of in systems.items()
        }
        for key, systems in out.items()
    }


def measure_together(
    specs: dict[str, dict], runs: int, cpu: int | None = None, slices: int = SLICES
) -> dict:
    """One set of specs in ``runs`` rounds (:func:`measure_rounds`), results by spec name."""
    return measure_rounds({"": specs}, runs, cpu, slices)[""]


def warm_up(call, seconds: float) -> float:
    """Call once (imports, JIT compilation, open files, page cache), then keep calling for
    ``seconds`` of CPU time so the process reaches its steady state before the first timed
    run.

    coffea's calls leave about 8 MB of cyclic garbage each, which only a full collection
    frees: until the first one (about 5 s of ADL Q5) the heap grows into fresh pages and a
    call takes 15% longer than after it. The objects alive after the first call (the
    imported libraries', 200-300 thousand) are frozen, so a full collection scans only what
    the calls keep (20 ms instead of 100-150 ms at random points of random runs); the
    collection after the calls leaves the allocator sized for them. Ours' calls trigger no
    full collection at all. Returns the first call's seconds."""
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    gc.collect()
    gc.freeze()
    cpu0 = time.process_time()
    while time.process_time() - cpu0 < seconds:  # CPU time: the systems warm up together
        call()
    gc.collect()
    return first


def main(argv: list[str]) -> int:
    from analysis_kernels.executor.allocator import keep_freed_memory
    from benchmarks.workloads import build

    once = argv[0] == "--once"
    spec = json.loads(argv[-1])
    # every system with the allocator settings ours' executor runs chunks with: a peer
    # whose freed memory went back to the kernel paid for fresh pages in some runs and not
    # in others (coffea's Q6: 150-230 ms a call, 155-170 ms with them)
    keep_freed_memory()
    call = build(
        spec["system"], spec["analysis"], spec["files"], spec["params"], spec.get("chunk_size")
    )
    if once:
        call()
        return 0
    first = warm_up(call, spec.get("warm_up_s", WARM_UP_S))
    print(READY + json.dumps({"pid": os.getpid(), "first_call_s": first}), flush=True)
    for line in sys.stdin:
        command, _, seconds = line.partition(" ")
        if command == "run":
            print(RESULT + json.dumps(one_run(call, float(seconds))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
