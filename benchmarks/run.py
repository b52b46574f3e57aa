"""Throughput of the three analyses: serial and LocalCluster, against the uproot I/O floor.

The I/O floor reads and decompresses exactly the branches an analysis declares, with
uproot and nothing else: no analysis can be faster. Every system is measured in the same
invocation on the same files, repeated, and reported as a ratio to that floor.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import time
from pathlib import Path

import uproot
from distributed import Client, LocalCluster

from analysis_kernels import get_analysis, run
from analysis_kernels.executor.chunks import expand_inputs
from analysis_kernels.generate import DatasetSpec, generate_dataset, load_truth

RESULTS = Path(__file__).parent / "results"


def io_floor(analysis: str, files: list[str], params: dict) -> float:
    """Seconds to read and decompress the declared branches of every file."""
    branches = list(get_analysis(analysis).branches_for(params))
    start = time.perf_counter()
    for path in files:
        with uproot.open(path) as f:
            f["Events"].arrays(branches, library="ak")
    return time.perf_counter() - start


def measure(fn, repeat: int) -> dict:
    times = [fn() for _ in range(repeat)]
    return {"min": min(times), "median": statistics.median(times), "all": times}


def dataset(analysis: str, directory: Path, events: int, files: int, codec: str) -> Path:
    target = directory / f"{analysis}-{codec}-{files}x{events}"
    try:
        spec = load_truth(target)["spec"]
        if spec["events_per_file"] == events and spec["files"] == files:
            return target
    except FileNotFoundError:
        pass
    generate_dataset(
        DatasetSpec(analysis, files=files, events_per_file=events, codec=codec),
        target,
        progress=False,
    )
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events-per-file", type=int, default=250_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--codec", default="ZSTD")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--n-variations", type=int, default=20, help="systematic variations of the stop analysis"
    )
    parser.add_argument("--data", type=Path, default=Path("data/bench"))
    args = parser.parse_args(argv)

    out_dir = RESULTS / dt.date.today().isoformat()
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "versions": {
            m: __import__(m).__version__
            for m in ("uproot", "awkward", "hist", "dask", "distributed")
        },
        "codec": args.codec,
        "events_per_file": args.events_per_file,
        "files": args.files,
        "rows": [],
    }
    for analysis in ("ds", "stop", "dt"):
        params = {"n_variations": args.n_variations} if analysis == "stop" else {}
        data = dataset(analysis, args.data, args.events_per_file, args.files, args.codec)
        files = expand_inputs(data)
        events = load_truth(data)["totals"]["events"]
        size = load_truth(data)["totals"]["bytes"]
        floor = measure(lambda a=analysis, f=files, p=params: io_floor(a, f, p), args.repeat)
        rows = {"io-floor": floor}
        rows["serial"] = measure(
            lambda a=analysis, d=data, p=params: run(a, d, params=p).wall_time, args.repeat
        )
        # A warm LocalCluster, as a physicist has from the Dask sidebar: startup not counted.
        with (
            LocalCluster(
                n_workers=2, threads_per_worker=1, dashboard_address=None, host="127.0.0.1"
            ) as cluster,
            Client(cluster) as client,
        ):
            run(analysis, data, executor=client, params=params)  # warm-up: imports on the workers
            rows["local:2"] = measure(
                lambda a=analysis, d=data, p=params: run(a, d, executor=client, params=p).wall_time,
                args.repeat,
            )
        for system, t in rows.items():
            row = {
                "analysis": analysis,
                "system": system,
                "events": events,
                "bytes": size,
                "wall_min_s": t["min"],
                "wall_median_s": t["median"],
                "events_per_s": events / t["min"],
                "ratio_to_io_floor": t["min"] / floor["min"],
            }
            results["rows"].append(row)
            print(
                f"{analysis:5s} {system:9s} {t['min']:7.2f} s  {row['events_per_s'] / 1e6:6.2f} Mev/s"
                f"  x{row['ratio_to_io_floor']:.2f} of I/O floor"
            )
    (out_dir / "throughput.json").write_text(json.dumps(results, indent=1))
    print(f"results: {out_dir / 'throughput.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
