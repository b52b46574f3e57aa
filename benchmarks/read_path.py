"""The read path, measured: which source, chunk size and decompression library to take.

On the files of the throughput table, each configuration pinned to one core as there
(:mod:`benchmarks.pinned`, interleaved): the I/O floor through uproot's ``tree.arrays`` with its
default source (fsspec) and with a memory map (ours' reader until the lean one), the floor
through ours' reader (``schema.read_chunk``: the lean basket reader of
:mod:`analysis_kernels.baskets`) at several chunk sizes, and raw decompression with cramjam
(the library uproot calls) and with the codecs' reference bindings (zstandard, lz4).
"""

from __future__ import annotations

from pathlib import Path

from analysis_kernels import get_analysis
from analysis_kernels.executor.chunks import expand_inputs
from benchmarks.common import branch_bytes, dataset, save
from benchmarks.pinned import measure_together as pinned

CONFIGS = [
    ("io-floor-fsspec", 100_000),
    ("io-floor-uproot", 100_000),
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
        f"{result['min_run_s']:g} s, one pinned core): uncompressed MB/s of the declared "
        "branches; floor = ours' reader (lean baskets), uproot = uproot's tree.arrays",
        "",
        "| codec | analysis | uproot fsspec | uproot memmap | floor | floor, 25k chunks "
        "| floor, 400k chunks | raw cramjam | raw reference | floor/uproot | floor/raw |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    keys = dict.fromkeys((r["codec"], r["analysis"]) for r in result["rows"])
    for codec, analysis in keys:
        rows = [r for r in result["rows"] if (r["codec"], r["analysis"]) == (codec, analysis)]
        cells = [
            f"{r['uncompressed_MB_per_s']:.0f}" + ("" if r["spread"] <= 0.10 else " (n.q.)")
            for r in rows
        ]
        rate = {(r["system"], r["chunk_size"]): r["uncompressed_MB_per_s"] for r in rows}
        floor = rate.get(("io-floor", 100_000))
        uproot_rate, raw = rate.get(("io-floor-uproot", 100_000)), rate.get(("raw", None))
        cells.append(f"{floor / uproot_rate:.2f}" if floor and uproot_rate else "-")
        cells.append(f"{floor / raw:.2f}" if floor and raw else "-")
        lines.append(f"| {codec} | {analysis} | {' | '.join(cells)} |")
    return lines
