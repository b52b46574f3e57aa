"""The read path, measured: which source, chunk size and decompression library to take.

On the files of the throughput table, each configuration pinned to one core as there
(:mod:`benchmarks.pinned`, interleaved): the I/O floor through uproot's default source (fsspec) and
through a memory map (what ours uses), the floor at several chunk sizes, and raw
decompression with cramjam (the library uproot calls) and with the codecs' reference
bindings (zstandard, lz4).
"""

from __future__ import annotations

from pathlib import Path

from analysis_kernels import get_analysis
from analysis_kernels.executor.chunks import expand_inputs
from benchmarks.common import branch_bytes, dataset, save
from benchmarks.pinned import measure_together as pinned

CONFIGS = [
    ("io-floor-fsspec", 100_000),
    ("io-floor", 100_000),
    ("io-floor", 25_000),
    ("io-floor", 400_000),
    ("raw-cramjam", None),
    ("raw", None),
]


def measure(
    data_root: Path,
    codecs: list[str],
    analyses: dict[str, int],
    min_run_s: float = 3.0,
    runs: int = 5,
    clock: str = "wall",
) -> dict:
    """``analyses``: analysis name to the events of its file."""
    rows = []
    for codec in codecs:
        for analysis, events in analyses.items():
            generator = get_analysis(analysis).generator
            files = expand_inputs(dataset(generator, data_root, 1, events, codec))
            ubytes = branch_bytes(analysis, files, "uncompressed")
            specs = {
                f"{system}@{chunk_size}": {
                    "system": system,
                    "analysis": analysis,
                    "files": files,
                    "params": {},
                    "chunk_size": chunk_size,
                    "min_run_s": min_run_s,
                }
                for system, chunk_size in CONFIGS
            }
            for name, t in pinned(specs, runs).items():
                t.update(t[clock])
                system, chunk_size = specs[name]["system"], specs[name]["chunk_size"]
                rows.append(
                    {
                        "analysis": analysis,
                        "codec": codec,
                        "system": system,
                        "chunk_size": chunk_size,
                        "events": events,
                        **t,
                        "uncompressed_MB_per_s": ubytes / 1e6 / t["median_s"],
                    }
                )
                print(
                    f"  {codec:4s} {analysis:7s} {system:16s} chunk {chunk_size or '-':>7}"
                    f"  {ubytes / 1e6 / t['median_s']:8.1f} MB/s  spread {100 * t['spread']:4.1f}%",
                    flush=True,
                )
    result = {"rows": rows, "min_run_s": min_run_s, "runs": runs, "clock": clock}
    save("read_path", result)
    return result


def table(result: dict) -> list[str]:
    lines = [
        f"Read path ({result['clock']} time, median of {result['runs']} runs of at least "
        f"{result['min_run_s']:g} s, one pinned core): uncompressed MB/s of the declared branches",
        "",
        "| codec | analysis | floor fsspec | floor memmap | memmap, 25k chunks | memmap, 400k chunks | raw cramjam | raw reference |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    keys = dict.fromkeys((r["codec"], r["analysis"]) for r in result["rows"])
    for codec, analysis in keys:
        cells = [
            f"{r['uncompressed_MB_per_s']:.0f}" + ("" if r["spread"] <= 0.10 else " (n.q.)")
            for r in result["rows"]
            if (r["codec"], r["analysis"]) == (codec, analysis)
        ]
        lines.append(f"| {codec} | {analysis} | {' | '.join(cells)} |")
    return lines
