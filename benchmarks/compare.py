"""Do two throughput runs agree? Issue 16 asks that two consecutive ``make bench`` runs agree
within 10% on every ratio; this makes that a command.

``python -m benchmarks.compare [A.json B.json]`` prints, for every ratio of either run (the
paired ratios of :func:`benchmarks.throughput.ratios`, recomputed from the rows' runs), both
values with their per-round spreads and their relative difference, marks a ratio that differs
by more than ``MAX_DIFFERENCE`` or that one run lacks, and exits 1 when any is marked. Without
arguments it takes the last two throughput results under ``benchmarks/results`` by when they
were measured (their ``machine.date``; a same-day run does not overwrite the earlier one).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks import throughput
from benchmarks.common import RESULTS

MAX_DIFFERENCE = 0.10


def latest(root: Path = RESULTS, n: int = 2) -> list[Path]:
    """The ``n`` throughput results under ``root`` measured last, oldest first."""
    paths = root.glob("*/throughput*.json")
    return sorted(paths, key=lambda p: json.loads(p.read_text())["machine"]["date"])[-n:]


def difference(a: float, b: float) -> float:
    """``b - a`` over their mean: the same size whichever run is given first."""
    return (b - a) / ((a + b) / 2)


def compare(a: dict, b: dict) -> list[dict]:
    """Every ratio of either run with both values; one only one run has counts as differing."""
    ratios_a, ratios_b = throughput.ratios(a["rows"]), throughput.ratios(b["rows"])
    out = []
    for analysis, codec in dict.fromkeys([*ratios_a, *ratios_b]):
        for name in throughput.RATIOS:
            x = ratios_a.get((analysis, codec), {}).get(name)
            y = ratios_b.get((analysis, codec), {}).get(name)
            if x is None and y is None:
                continue
            diff = difference(x["value"], y["value"]) if x and y else None
            out.append(
                {
                    "analysis": analysis,
                    "codec": codec,
                    "ratio": name,
                    "a": x,
                    "b": y,
                    "difference": diff,
                    "differs": diff is None or abs(diff) > MAX_DIFFERENCE,
                }
            )
    return out


def _value(ratio: dict | None) -> str:
    if ratio is None:
        return "missing"
    quoted = "" if ratio["quoted"] else ", n.q."
    return f"{ratio['value']:.3g} ({100 * ratio['spread']:.0f}%{quoted})"


def _run(path: Path, result: dict) -> str:
    """Which run, and how it was timed: runs timed differently need not agree."""
    return (
        f"{path} ({result['machine']['date']}, {result['clock']} time, {result['runs']} runs "
        f"of at least {result['min_run_s']:g} s)"
    )


def table(comparison: list[dict], a: str, b: str) -> list[str]:
    lines = [
        f"A: {a}",
        f"B: {b}",
        f"Paired ratios (per-round spread), difference = (B - A) / mean; DIFFERS = over "
        f"{100 * MAX_DIFFERENCE:.0f}% or in one run only:",
        "",
        "| analysis | codec | ratio | A | B | difference | |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in comparison:
        diff = "-" if c["difference"] is None else f"{100 * c['difference']:+.1f}%"
        mark = "DIFFERS" if c["differs"] else ""
        lines.append(
            f"| {c['analysis']} | {c['codec']} | {c['ratio']} | {_value(c['a'])} | "
            f"{_value(c['b'])} | {diff} | {mark} |"
        )
    differing = sum(c["differs"] for c in comparison)
    lines += ["", f"{differing} of {len(comparison)} ratios differ"]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "runs",
        nargs="*",
        type=Path,
        help="two throughput JSONs, earlier first (default: the last two under benchmarks/results)",
    )
    args = parser.parse_args(argv)
    paths = args.runs or latest()
    if len(paths) != 2:
        parser.error(f"two throughput results to compare, not {len(paths)}")
    a, b = (json.loads(p.read_text()) for p in paths)
    comparison = compare(a, b)
    print("\n".join(table(comparison, _run(paths[0], a), _run(paths[1], b))))
    return 1 if any(c["differs"] for c in comparison) else 0


if __name__ == "__main__":
    raise SystemExit(main())
