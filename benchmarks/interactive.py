"""Study 5: quasi-interactivity. Re-running after changing a cut, with the columns kept in
worker memory, against the cold first run, on the same two-worker LocalCluster."""

from __future__ import annotations

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
        run("ds", paths[:1], executor=client, chunk_size=chunk_size)  # imports on the workers
        cold = run("ds", paths, executor=client, chunk_size=chunk_size, cache=True)
        warm = [
            run(
                "ds",
                paths,
                executor=client,
                chunk_size=chunk_size,
                cache=True,
                params={"fd_significance_min": cut},
            )
            for cut in CUTS[1:]
        ]
    result = {
        "events": cold.events_total,
        "cold_s": cold.wall_time,
        "cold_bytes": cold.bytes_read,
        "warm_s": [r.wall_time for r in warm],
        "warm_bytes": [r.bytes_read for r in warm],
        "cuts": CUTS,
        "speedup": cold.wall_time / min(r.wall_time for r in warm),
    }
    print(
        f"  Ds cold {result['cold_s']:.2f}s, warm re-runs {', '.join(f'{w:.2f}s' for w in result['warm_s'])}"
        f" -> {result['speedup']:.1f}x"
    )
    save("interactive", result)
    return result
