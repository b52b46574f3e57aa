"""Study 4: events/s and MB/s per core for every analysis x system x codec, with ratios.

Systems, on the same files: ours (serial), ROOT RDataFrame (the analysis as the seed
notebooks write it), coffea (ADL queries, NanoEvents with virtual arrays: only touched
columns are read), the I/O floor (uproot reading the declared branches in ours' chunks) and
raw decompression (the codec library alone on the same baskets). Each row is its own
process pinned to one core (:mod:`benchmarks.pinned`): warm-up, then ``runs`` runs of at
least ``min_run_s`` seconds, interleaved with the other systems' runs on the same analysis;
the median is reported with CPU/wall and the min-max spread,
and a row whose spread exceeds ``MAX_SPREAD`` is marked not quoted. ``clock`` picks the
figure: wall time (the default, for a quiet machine) or the process CPU time (on a shared
machine, where other tenants' work inflates the wall time of a pinned process).
"""

from __future__ import annotations

from pathlib import Path

from analysis_kernels import get_analysis
from analysis_kernels.executor.chunks import expand_inputs
from benchmarks.common import branch_bytes, dataset, save
from benchmarks.pinned import measure_together as pinned
from benchmarks.workloads import systems_for

SEED_ANALYSES = {"ds": {}, "stop": {"n_variations": 20}, "dt": {}}
ADL_QUERIES = [f"adl_q{i}" for i in range(1, 9)]
MAX_SPREAD = 0.10


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
        for analysis in analyses:
            params = SEED_ANALYSES.get(analysis, {})
            n = adl_events if analysis.startswith("adl_") else events
            files = expand_inputs(dataset(get_analysis(analysis).generator, data_root, 1, n, codec))
            cbytes, ubytes = (
                branch_bytes(analysis, files, kind) for kind in ("compressed", "uncompressed")
            )
            specs = {
                system: {
                    "system": system,
                    "analysis": analysis,
                    "files": files,
                    "params": params,
                    "min_run_s": min_run_s,
                }
                for system in systems_for(analysis)
            }
            for system, t in pinned(specs, runs).items():
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
                    f"  spread {100 * t['spread']:4.1f}%  cpu/wall {t['cpu_over_wall']:.3f}"
                    f"  load {t['loadavg'][0][0]:.2f}",
                    flush=True,
                )
    result = {
        "rows": rows,
        "events": events,
        "adl_events": adl_events,
        "min_run_s": min_run_s,
        "runs": runs,
        "max_spread": MAX_SPREAD,
        "clock": clock,
    }
    save("throughput", result)
    return result


def ratios(rows: list[dict]) -> dict[tuple[str, str], dict]:
    """Per (analysis, codec): ours vs RDataFrame and coffea (speed), ours / floor (time),
    floor speed as a fraction of raw decompression, and whether every row used is quoted."""
    by: dict[tuple[str, str], dict[str, dict]] = {}
    for r in rows:
        by.setdefault((r["analysis"], r["codec"]), {})[r["system"]] = r
    out = {}
    for key, s in by.items():
        t = {name: row["median_s"] for name, row in s.items()}
        out[key] = {
            "vs_rdataframe": t["rdataframe"] / t["ours"],
            "vs_coffea": t["coffea"] / t["ours"] if "coffea" in t else None,
            "over_floor": t["ours"] / t["io-floor"],
            "floor_of_raw": t["raw"] / t["io-floor"],
            "quoted": all(row["quoted"] for row in s.values()),
            "rates": {name: row["events_per_s_per_core"] for name, row in s.items()},
            "spreads": {name: row["spread"] for name, row in s.items()},
        }
    return out
