"""Study 5: quasi-interactivity. Re-running after changing a cut, with the columns kept in
worker memory, against the cold first run, on the same two-worker LocalCluster.

Besides the wall times, the CPU time of each run (the workers' processes and this one, which
holds the scheduler) and the load average before it: on a shared machine the wall time also
counts the time others hold the cores, and the CPU times say how much work each run was."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from distributed import Client, LocalCluster

from analysis_kernels import run
from analysis_kernels.executor.chunks import expand_inputs
from benchmarks.common import dataset, save

CUTS = [2.0, 3.0, 4.0, 5.0]


def measure(data_root: Path, files: int, events_per_file: int, chunk_size: int) -> dict:
    paths = expand_inputs(dataset("ds", data_root, files, events_per_file))
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=None, host="127.0.0.1"
        ) as cluster,
        Client(cluster) as client,
    ):

        def timed(**params) -> tuple:
            load = os.getloadavg()[0]
            before = sum(client.run(time.process_time).values()) + time.process_time()
            report = run(
                "ds", paths, executor=client, chunk_size=chunk_size, cache=True, params=params
            )
            cpu = sum(client.run(time.process_time).values()) + time.process_time() - before
            return report, cpu, load

        run("ds", paths[:1], executor=client, chunk_size=chunk_size)  # imports on the workers
        cold, cold_cpu, cold_load = timed()
        warm = [timed(fd_significance_min=cut) for cut in CUTS[1:]]
    warm_s = [r.wall_time for r, _, _ in warm]
    result = {
        "events": cold.events_total,
        "cold_s": cold.wall_time,
        "cold_bytes": cold.bytes_read,
        "warm_s": warm_s,
        "warm_bytes": [r.bytes_read for r, _, _ in warm],
        "cuts": CUTS,
        "speedup": cold.wall_time / min(warm_s),
        "speedup_median": cold.wall_time / statistics.median(warm_s),
        "cold_cpu_s": cold_cpu,
        "warm_cpu_s": [cpu for _, cpu, _ in warm],
        "load_before": [cold_load, *(load for _, _, load in warm)],
    }
    print(
        f"  Ds cold {result['cold_s']:.2f}s, warm re-runs {', '.join(f'{w:.2f}s' for w in warm_s)}"
        f" -> {result['speedup']:.1f}x (median {result['speedup_median']:.1f}x);"
        f" CPU cold {cold_cpu:.2f}s, warm {', '.join(f'{c:.2f}s' for c in result['warm_cpu_s'])};"
        f" load {cold_load:.1f}"
    )
    save("interactive", result)
    return result
