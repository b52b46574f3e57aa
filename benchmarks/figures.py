"""PNG figures of the benchmark results, styled like the seed figures (mplhep)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mplhep
import numpy as np

MARKERS = ["s", "^", "v", "o"]
COLOURS = ["black", "tab:red", "tab:blue", "tab:green"]


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def systematics(result: dict, out: Path) -> Path:
    plt.style.use(mplhep.style.ATLAS)
    fig, ax = plt.subplots()
    for (name, values), marker, colour in zip(
        result["curves"].items(), MARKERS, COLOURS, strict=False
    ):
        ax.plot(result["grid"], values, marker=marker, color=colour, label=name)
    ax.set_xlabel("number of systematic variations")
    ax.set_ylabel("cumulative execution time [s]")
    ax.set_yscale("log")
    ax.legend(fontsize="x-small")
    ax.set_title(f"stop two-lepton, {result['events'] / 1e3:.0f}k events", fontsize="small")
    return _save(fig, out / "systematics.png")


def scaling(result: dict, out: Path) -> list[Path]:
    plt.style.use(mplhep.style.CMS)
    fig, ax = plt.subplots()
    labels = list(result["serial_vs_distributed"])
    wall = [result["serial_vs_distributed"][k]["wall_s"] for k in labels]
    cpu = [result["serial_vs_distributed"][k]["cpu_s"] for k in labels]
    x = np.arange(len(labels))
    ax.bar(x - 0.2, wall, 0.4, label="wall time")
    ax.bar(x + 0.2, cpu, 0.4, label="CPU time")
    ax.set_xticks(x, labels)
    ax.set_ylabel("time [s]")
    ax.legend()
    ax.set_title(f"Ds analysis, {result['sizes_GB'][-1]:.2f} GB", fontsize="small")
    left = _save(fig, out / "ds_serial_vs_distributed.png")

    fig, ax = plt.subplots()
    sizes = np.asarray(result["sizes_GB"])
    for (workers, walls), colour in zip(result["wall"].items(), COLOURS[1:], strict=False):
        fit = result["fit"][workers]
        ax.plot(
            sizes,
            walls,
            "o",
            color=colour,
            label=f"{workers} worker(s): {fit['slope_s_per_GB']:.1f} s/GB, $R^2$={fit['r2']:.3f}",
        )
        ax.plot(sizes, fit["slope_s_per_GB"] * sizes + fit["intercept_s"], "--", color=colour)
    ax.set_xlabel("input dataset size [GB]")
    ax.set_ylabel("execution time [s]")
    ax.legend(fontsize="small")
    right = _save(fig, out / "ds_scaling.png")

    fig, (cpu_ax, mem_ax) = plt.subplots(2, 1, sharex=True, figsize=(10, 8))
    for name, samples in result.get("resources", {}).items():
        t, c, rss = np.asarray(samples).T if samples else ([], [], [])
        cpu_ax.plot(t, c, label=name)
        mem_ax.plot(t, np.asarray(rss) / 1e6, label=name)
    cpu_ax.set_ylabel("CPU [%]")
    mem_ax.set_ylabel("RSS [MB]")
    mem_ax.set_xlabel("time [s]")
    cpu_ax.legend(fontsize="small")
    resources = _save(fig, out / "resources.png")
    return [left, right, resources]


def throughput(result: dict, out: Path, codec: str = "ZSTD") -> Path:
    plt.style.use(mplhep.style.CMS)
    rows = [r for r in result["rows"] if r["codec"] == codec]
    analyses = list(dict.fromkeys(r["analysis"] for r in rows))
    systems = list(dict.fromkeys(r["system"] for r in rows))
    fig, ax = plt.subplots(figsize=(14, 6))
    width = 0.8 / len(systems)
    for i, system in enumerate(systems):
        values = [
            next(
                (
                    r["events_per_s_per_core"]
                    for r in rows
                    if r["analysis"] == a and r["system"] == system
                ),
                0,
            )
            for a in analyses
        ]
        ax.bar(np.arange(len(analyses)) + i * width, values, width, label=system)
    ax.set_xticks(np.arange(len(analyses)) + 0.4 - width / 2, analyses, rotation=30, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("events / s / core")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))  # off the bars
    ax.set_title(f"codec {codec}", fontsize="small")
    return _save(fig, out / f"throughput_{codec}.png")


def interactive(result: dict, out: Path) -> Path:
    plt.style.use(mplhep.style.CMS)
    fig, ax = plt.subplots()
    labels = [f"cold (FD sig > {result['cuts'][0]})"] + [
        f"warm (> {c})" for c in result["cuts"][1:]
    ]
    ax.bar(
        labels,
        [result["cold_s"], *result["warm_s"]],
        color=["tab:gray"] + ["tab:green"] * len(result["warm_s"]),
    )
    ax.set_ylabel("wall time [s]")
    ax.tick_params(axis="x", labelsize="small")
    return _save(fig, out / "interactive.png")
