"""Study 4: events/s and MB/s per core for every analysis x system x codec, with ratios.

Systems, on the same files: ours (serial), ROOT RDataFrame (the analysis as the seed
notebooks write it), coffea (ADL queries, NanoEvents with virtual arrays: only touched
columns are read), the I/O floor (uproot reading the declared branches in ours' chunks) and
raw decompression (the codec library alone on the same baskets). Each row runs in
processes of its own pinned to one core (:mod:`benchmarks.pinned`): ``runs`` rounds over
every analysis of a codec, each round a fresh warmed-up process per system and one run of at
least ``min_run_s`` seconds, interleaved with the other systems' runs on the same analysis;
the median is reported with CPU/wall and the min-max spread,
and a row whose spread exceeds ``MAX_SPREAD`` is marked not quoted. ``clock`` picks the
figure: wall time (the default, for a quiet machine) or the process CPU time (on a shared
machine, where other tenants' work inflates the wall time of a pinned process).

A ratio of two systems is taken per round, from that round's two runs, and reported as the
median of the per-round ratios with their min-max spread: a slow period of the machine slows
the runs of one round together and cancels in their ratio, where it would widen both rows.
A ratio is quoted when its own spread is within ``MAX_SPREAD``, whatever the rows' spreads.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from analysis_kernels import get_analysis
from analysis_kernels.executor.chunks import expand_inputs
from benchmarks.common import branch_bytes, dataset, save
from benchmarks.pinned import SLICES, WARM_UP_S
from benchmarks.pinned import measure_rounds as pinned
from benchmarks.workloads import systems_for

SEED_ANALYSES = {"ds": {}, "stop": {"n_variations": 20}, "dt": {}}
ADL_QUERIES = [f"adl_q{i}" for i in range(1, 9)]
MAX_SPREAD = 0.10
RATIOS = {  # name: (system, system) whose times per call are divided
    "vs_rdataframe": ("rdataframe", "ours"),  # ours' speed over RDataFrame's
    "vs_coffea": ("coffea", "ours"),
    "over_floor": ("ours", "io-floor"),  # ours' time over the floor's
    "floor_of_raw": ("raw", "io-floor"),  # the floor's speed over raw decompression's
}


def measure(
    data_root: Path,
    codecs: list[str],
    events: int,
    adl_events: int,
    min_run_s: float = 3.0,
    runs: int = 5,
    analyses: list[str] | None = None,
    clock: str = "wall",
) -> dict:
    analyses = analyses or [*SEED_ANALYSES, *ADL_QUERIES]
    rows = []
    for codec in codecs:
        sets, sizes = {}, {}
        for analysis in analyses:
            params = SEED_ANALYSES.get(analysis, {})
            n = adl_events if analysis.startswith("adl_") else events
            files = expand_inputs(dataset(get_analysis(analysis).generator, data_root, 1, n, codec))
            sizes[analysis] = (
                n,
                *(branch_bytes(analysis, files, kind) for kind in ("compressed", "uncompressed")),
            )
            sets[analysis] = {
                system: {
                    "system": system,
                    "analysis": analysis,
                    "files": files,
                    "params": params,
                    "min_run_s": min_run_s,
                }
                for system in systems_for(analysis)
            }
        measured = pinned(sets, runs, progress=_progress(codec, runs))
        for analysis, systems in measured.items():
            n, cbytes, ubytes = sizes[analysis]
            for system, t in systems.items():
                t.update(t[clock])  # median_s, spread, ... of the chosen clock
                rows.append(
                    {
                        "analysis": analysis,
                        "codec": codec,
                        "system": system,
                        "events": n,
                        "compressed_bytes": cbytes,
                        "uncompressed_bytes": ubytes,
                        **t,
                        "quoted": t["spread"] <= MAX_SPREAD,
                        "events_per_s_per_core": n / t["median_s"],
                        "uncompressed_MB_per_s_per_core": ubytes / 1e6 / t["median_s"],
                    }
                )
                print(
                    f"  {codec:4s} {analysis:7s} {system:10s} {n / t['median_s'] / 1e6:8.3f} Mev/s"
                    f"  spread {100 * t['spread']:4.1f}%  cpu/wall {t['cpu_over_wall']:.3f}",
                    flush=True,
                )
            paired = ratios(rows)[(analysis, codec)].items()
            print(
                "  "
                + ", ".join(f"{n} {k['value']:.2f} ({100 * k['spread']:.0f}%)" for n, k in paired),
                flush=True,
            )
    result = {
        "rows": rows,
        "events": events,
        "adl_events": adl_events,
        "min_run_s": min_run_s,
        "runs": runs,
        "slices": SLICES,
        "warm_up_s": WARM_UP_S,
        "max_spread": MAX_SPREAD,
        "clock": clock,
    }
    save("throughput", result)
    return result


def _progress(codec: str, runs: int):
    def done(r: int, analysis: str) -> None:
        print(f"  {codec} round {r + 1}/{runs} {analysis}", flush=True)

    return done


def paired(numerator: list[float], denominator: list[float]) -> dict:
    """The median of the per-round ratios and their min-max spread: runs of one round share
    the machine's slow periods, which cancel in their ratio."""
    per_round = [n / d for n, d in zip(numerator, denominator, strict=True)]
    value = statistics.median(per_round)
    spread = (max(per_round) - min(per_round)) / value
    return {
        "value": value,
        "spread": spread,
        "quoted": spread <= MAX_SPREAD,
        "per_round": per_round,
    }


def ratios(rows: list[dict]) -> dict[tuple[str, str], dict[str, dict]]:
    """Per (analysis, codec), each ratio of :data:`RATIOS` whose two systems were measured,
    paired round by round (the rows' ``all_s``, in round order)."""
    runs: dict[tuple[str, str], dict[str, list[float]]] = {}
    for r in rows:
        runs.setdefault((r["analysis"], r["codec"]), {})[r["system"]] = r["all_s"]
    return {
        key: {
            name: paired(times[a], times[b])
            for name, (a, b) in RATIOS.items()
            if a in times and b in times
        }
        for key, times in runs.items()
    }
