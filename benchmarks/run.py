"""``make bench``: every study in one invocation, peers measured beside ours.

Results: ``benchmarks/results/<date>/`` (JSON per study, a later run on the same day's as
``NAME-2.json``, ``NAME-3.json``, ...; PNG figures and ``summary.md``, with the throughput
table and the targets, are the last run's). ``python -m benchmarks.compare`` compares the
ratios of the last two throughput runs. At the defaults the throughput table alone takes
about 75 minutes on 2 cores (3 codecs x 11 analyses, 5 interleaved rounds of at least 3 s per
system); ``--scale`` multiplies every dataset size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks import (
    figures,
    hub_concurrency,
    interactive,
    operator_scale,
    read_path,
    scaling,
    storage_read,
    systematics,
    throughput,
    variations,
)
from benchmarks.common import results_dir

STUDIES = ["throughput", "storage", "systematics", "scaling", "interactive", "hub", "operator"]
EXTRA_STUDIES = ["read_path", "variations"]  # on request only (--only ...)


SYSTEM_COLUMNS = ["ours", "rdataframe", "coffea", "io-floor", "raw"]


def _rate(row: dict | None) -> str:
    """Mev/s of a row; a row whose min-max spread is too large is not quoted."""
    if row is None:
        return "-"
    if not row["quoted"]:
        return f"n.q. ({100 * row['spread']:.0f}%)"
    return f"{row['events_per_s_per_core'] / 1e6:.3g}"


def _ratio(ratio: dict | None, suffix: str = "") -> str:
    """A paired ratio (median of the per-round ratios); one whose per-round values spread too
    much is not quoted, whether or not its rows are."""
    if ratio is None:
        return "-"
    if not ratio["quoted"]:
        return f"n.q. ({100 * ratio['spread']:.0f}%)"
    return f"{ratio['value']:.2f}{suffix}"


def _table(result: dict, codec: str) -> list[str]:
    rows = [r for r in result["rows"] if r["codec"] == codec]
    ratios = throughput.ratios(rows)
    slices = result.get("slices")  # results before 2026-11-23 11:00 ran whole
    pieces = f" in {slices} alternating pieces" if slices else ""
    warm_up = result.get("warm_up_s")  # results before 2026-11-24 03:00: one process per row
    processes = f", each round in fresh processes ({warm_up:g} s warm-up)" if warm_up else ""
    lines = [
        f"Codec {codec}, one pinned core, {result['events']} events (seed analyses), "
        f"{result['adl_events']} (ADL); {result['clock']} time, median of {result['runs']} runs of at least "
        f"{result['min_run_s']:g} s{pieces}{processes}; Mev/s; ratios: median of the per-round ratios of the "
        f"systems' paired runs; n.q. = not quoted (min-max spread of the runs, or of a ratio's "
        f"per-round values, over {100 * result['max_spread']:.0f}%):",
        "",
        "| analysis | ours | RDataFrame | coffea | I/O floor | raw decompr. | ours vs RDF | ours vs coffea | ours / floor (time) | floor / raw (speed) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for analysis in dict.fromkeys(r["analysis"] for r in rows):
        by = {r["system"]: r for r in rows if r["analysis"] == analysis}
        k = ratios[(analysis, codec)]
        cells = [_rate(by.get(s)) for s in SYSTEM_COLUMNS]
        cells += [
            _ratio(k.get("vs_rdataframe"), "x"),
            _ratio(k.get("vs_coffea"), "x"),
            _ratio(k.get("over_floor")),
            _ratio(k.get("floor_of_raw")),
        ]
        lines.append(f"| {analysis} | {' | '.join(cells)} |")
    return lines


def _worst(ratios: dict, key: str, codecs: set[str], analyses=None, highest=False) -> str:
    """The worst quoted ratio among the rows asked for, with where it is."""
    asked = [
        (v[key], a, c)
        for (a, c), v in ratios.items()
        if key in v and c in codecs and (analyses is None or a in analyses)
    ]
    items = [(k["value"], a, c) for k, a, c in asked if k["quoted"]]
    if not items:
        return "none quoted"
    value, analysis, codec = (max if highest else min)(items)
    skipped = len(asked) - len(items)
    return f"worst {value:.2f} ({analysis}, {codec})" + (
        f"; {skipped} not quoted" if skipped else ""
    )


def _targets(results: dict) -> list[str]:
    lines = ["", "Targets (issue 16), as measured in this run:", ""]
    if "throughput" in results:
        ratios = throughput.ratios(results["throughput"]["rows"])
        fast, lzma = {"ZSTD", "LZ4"}, {"LZMA"}
        seed_and_adl = {"ds", "dt", *throughput.ADL_QUERIES}
        lines += [
            f"- >= 2x RDataFrame, ZSTD and LZ4: {_worst(ratios, 'vs_rdataframe', fast)}",
            f"- >= 1x RDataFrame, LZMA: {_worst(ratios, 'vs_rdataframe', lzma)}",
            f"- >= coffea on every ADL query: {_worst(ratios, 'vs_coffea', fast | lzma)}",
            f"- ours/floor <= 1.5 (Ds, DT, ADL; ZSTD, LZ4): "
            f"{_worst(ratios, 'over_floor', fast, seed_and_adl, highest=True)}",
            f"- floor >= 70% of raw ZSTD decompression: {_worst(ratios, 'floor_of_raw', {'ZSTD'})}",
        ]
    if "systematics" in results:
        lines.append(
            f"- 100 variations <= 2x one nominal pass (study 1): {results['systematics']['cost_100_over_1']:.1f}x"
        )
    if "variations" in results:
        v = results["variations"]
        lines.append(
            f"- 100 variations <= 2x one nominal pass (pinned): {v['cost_100_over_1']:.2f}x"
            + ("" if v["quoted"] else " (n.q.: a spread over 10%)")
        )
    if "scaling" in results:
        lines.append(
            f"- parallel efficiency 1 -> 2 workers >= 90%: {100 * results['scaling']['parallel_efficiency_1_to_2']:.0f}%"
        )
    if "interactive" in results:
        lines.append(
            f"- warm re-run >= 10x faster than cold: {results['interactive']['speedup']:.1f}x"
        )
    if "hub" in results:
        hub = results["hub"]
        lines.append(
            f"- {hub['users']} concurrent logins and spawns (local facility): ready p50 "
            f"{hub['ready_p50_s']:.1f} s, p95 {hub['ready_p95_s']:.1f} s; hub and proxy CPU "
            f"{hub['hub_and_proxy_cpu_s']:.1f} s ({100 * hub['hub_and_proxy_cpu_share']:.0f}% of a core)"
        )
    if "operator" in results:
        op = results["operator"]
        lines.append(
            f"- {op['users']} Dask clusters x {op['workers_per_cluster']} workers on {op['nodes']} simulated nodes"
            f" (controller manager at {op['controller_qps']} requests/s):"
            f" {op['clusters_running']} running; operator's first reconcile p50 {op['first_reconcile_p50_s']:.1f} s,"
            f" p95 {op['first_reconcile_p95_s']:.1f} s; all pods running p50 {op['all_running_p50_s']:.0f} s,"
            f" p95 {op['all_running_p95_s']:.0f} s; API server {op['apiserver_requests_per_s']:.0f} requests/s,"
            f" {100 * op['cpu_share']['kube-apiserver']:.0f}% of a core"
        )
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--only", nargs="+", choices=STUDIES + EXTRA_STUDIES, default=STUDIES, help="studies to run"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every dataset size")
    parser.add_argument(
        "--repeat", type=int, default=2, help="repetitions of the other studies' measurements"
    )
    parser.add_argument(
        "--min-run-s", type=float, default=3.0, help="throughput: least seconds of one timed run"
    )
    parser.add_argument("--runs", type=int, default=5, help="throughput: runs per row (median)")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="throughput: time the rows by wall time, or by process CPU time on a shared machine",
    )
    parser.add_argument(
        "--analyses", nargs="+", default=None, help="throughput: analyses (default: all)"
    )
    parser.add_argument(
        "--codecs",
        nargs="+",
        default=["ZSTD", "LZ4", "LZMA"],
        help="codecs of the throughput table",
    )
    parser.add_argument(
        "--data", type=Path, default=Path("data/bench"), help="where generated datasets are kept"
    )
    parser.add_argument(
        "--users", type=int, default=30, help="users logging in at once in the hub study"
    )
    parser.add_argument(
        "--clusters", type=int, default=200, help="users' Dask clusters in the operator study"
    )
    parser.add_argument("--workers", type=int, default=10, help="workers per Dask cluster")
    parser.add_argument("--nodes", type=int, default=50, help="simulated nodes (kwok)")
    parser.add_argument(
        "--controller-qps",
        type=int,
        default=0,
        help="the controller manager's API rate limit in the operator study (default: 20/s)",
    )
    args = parser.parse_args(argv)
    size = lambda n: max(1000, int(n * args.scale))  # noqa: E731
    out = results_dir()
    results = {}
    if "throughput" in args.only:
        print("throughput (study 4)")
        results["throughput"] = throughput.measure(
            args.data,
            args.codecs,
            size(100_000),
            size(400_000),
            args.min_run_s,
            args.runs,
            args.analyses,
            args.clock,
        )
        for codec in args.codecs:
            figures.throughput(results["throughput"], out, codec)
    if "storage" in args.only:
        print("reading grid storage with a token: root://, https://, XCache (issue 15)")
        results["storage"] = storage_read.measure(
            args.data,
            {"ds": size(100_000), "adl_q6": size(400_000)},
            "ZSTD",
            args.min_run_s,
            args.runs,
            args.clock,
        )
    if "read_path" in args.only:
        print("read path (source, chunk size, decompression library)")
        results["read_path"] = read_path.measure(
            args.data,
            args.codecs,
            {"ds": size(100_000), "adl_q6": size(400_000)},
            args.min_run_s,
            args.runs,
            args.clock,
        )
    if "variations" in args.only:
        print("cost of 100 variations, pinned (study 9)")
        results["variations"] = variations.measure(
            args.data, size(100_000), args.min_run_s, args.runs, args.clock
        )
    if "systematics" in args.only:
        print("systematic variations (study 1)")
        results["systematics"] = systematics.measure(
            args.data, size(50_000), 2, 1, chunk_size=size(25_000)
        )
        figures.systematics(results["systematics"], out)
    if "scaling" in args.only:
        print("Ds scaling and resources (studies 2, 3)")
        results["scaling"] = scaling.measure(
            args.data, 8, size(1_250_000), [1, 2, 4, 6, 8], chunk_size=size(250_000)
        )
        figures.scaling(results["scaling"], out)
    if "interactive" in args.only:
        print("quasi-interactivity (study 5)")
        results["interactive"] = interactive.measure(
            args.data, 8, size(1_250_000), chunk_size=size(250_000)
        )
        figures.interactive(results["interactive"], out)
    if "hub" in args.only:
        print("concurrent logins and spawns (study 6)")
        results["hub"] = hub_concurrency.measure(args.users)
    if "operator" in args.only:
        print("the dask operator at scale (study 7)")
        results["operator"] = operator_scale.measure(
            args.clusters, args.workers, args.nodes, args.controller_qps
        )
    lines = []
    if "throughput" in results:
        for codec in args.codecs:
            lines += [*_table(results["throughput"], codec), ""]
    if "storage" in results:
        lines += [*storage_read.table(results["storage"]), ""]
    if "read_path" in results:
        lines += [*read_path.table(results["read_path"]), ""]
    lines += _targets(results)
    summary = "summary.md" if args.only == STUDIES else f"summary-{'-'.join(args.only)}.md"
    (out / summary).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"results and figures: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
