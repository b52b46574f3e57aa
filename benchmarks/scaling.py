"""Studies 2 and 3 (seed paper Figure 6, and resources): the Ds analysis as data grows.

Serial versus distributed wall and CPU time; wall time versus dataset size for one and two
worker processes, with a straight-line fit (slope in s/GB, R^2); CPU % and resident memory
of each worker process, sampled through a run.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from distributed import Client

from analysis_kernels import run
from analysis_kernels.executor.chunks import expand_inputs
from analysis_kernels.executor.processes import DaskProcesses
from benchmarks.common import dataset, save


class Sampler(threading.Thread):
    """CPU % and RSS of some processes, every ``interval`` seconds, until stopped."""

    def __init__(self, pids: dict[str, int], interval: float = 0.2):
        super().__init__(daemon=True)
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.interval = interval
        self.samples: dict[str, list] = {name: [] for name in pids}
        self.halt = threading.Event()

    def run(self):
        start = time.perf_counter()
        for p in self.procs.values():
            p.cpu_percent(None)
        while not self.halt.wait(self.interval):
            for name, p in self.procs.items():
                with p.oneshot():
                    self.samples[name].append(
                        (time.perf_counter() - start, p.cpu_percent(None), p.memory_info().rss)
                    )

    def stop(self) -> dict:
        self.halt.set()
        self.join()
        return self.samples


def _fit(x: list[float], y: list[float]) -> dict:
    slope, intercept = np.polyfit(x, y, 1)
    predicted = slope * np.asarray(x) + intercept
    ss_res = float(((np.asarray(y) - predicted) ** 2).sum())
    ss_tot = float(((np.asarray(y) - np.mean(y)) ** 2).sum())
    return {
        "slope_s_per_GB": float(slope),
        "intercept_s": float(intercept),
        "r2": 1 - ss_res / ss_tot if ss_tot else 1.0,
    }


def measure(
    data_root: Path, files: int, events_per_file: int, steps: list[int], chunk_size: int
) -> dict:
    data = dataset("ds", data_root, files, events_per_file)
    paths = expand_inputs(data)
    sizes_gb = [sum(os.path.getsize(p) for p in paths[:k]) / 1e9 for k in steps]
    result: dict = {
        "sizes_GB": sizes_gb,
        "files": steps,
        "events_per_file": events_per_file,
        "wall": {},
        "fit": {},
    }
    serial = run("ds", paths, chunk_size=chunk_size)
    result["serial_vs_distributed"] = {
        "serial": {"wall_s": serial.wall_time, "cpu_s": serial.cpu_time}
    }
    for workers in (1, 2):
        with DaskProcesses(n_workers=workers) as procs, Client(procs.scheduler_address) as client:
            run("ds", paths[:1], executor=client, chunk_size=chunk_size)  # imports on the workers
            walls = []
            for k in steps:
                sampler = None
                if workers == 2 and k == steps[-1]:
                    sampler = Sampler(
                        {addr.rsplit(":", 1)[1]: pid for addr, pid in client.run(os.getpid).items()}
                    )
                    sampler.start()
                report = run("ds", paths[:k], executor=client, chunk_size=chunk_size)
                walls.append(report.wall_time)
                if sampler:
                    result["resources"] = {
                        f"worker {i}": s for i, s in enumerate(sampler.stop().values())
                    }
                if k == steps[-1]:
                    result["serial_vs_distributed"][f"{workers} worker(s)"] = {
                        "wall_s": report.wall_time,
                        "cpu_s": report.cpu_time,
                    }
            result["wall"][str(workers)] = walls
            result["fit"][str(workers)] = _fit(sizes_gb, walls)
            print(
                f"  Ds {workers} worker(s): "
                + ", ".join(f"{s:.2f} GB {w:.1f}s" for s, w in zip(sizes_gb, walls, strict=True))
                + f"; slope {result['fit'][str(workers)]['slope_s_per_GB']:.1f} s/GB, R2 {result['fit'][str(workers)]['r2']:.4f}"
            )
    one, two = result["wall"]["1"][-1], result["wall"]["2"][-1]
    result["parallel_efficiency_1_to_2"] = one / (2 * two)
    save("scaling", result)
    return result
