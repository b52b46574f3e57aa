"""``make bench``: every study in one invocation, peers measured beside ours.

Results: ``benchmarks/results/<date>/`` (JSON per study, PNG figures, ``summary.md`` with the
throughput table and the targets). Default sizes finish in about 15 minutes on 2 cores;
``--scale`` multiplies every dataset size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks import (
    figures,
    hub_concurrency,
    interactive,
    operator_scale,
    scaling,
    systematics,
    throughput,
)
from benchmarks.common import results_dir

STUDIES = ["throughput", "systematics", "scaling", "interactive", "hub", "operator"]


def _table(result: dict, codec: str) -> list[str]:
    rows = [r for r in result["rows"] if r["codec"] == codec]
    lines = [
        f"Codec {codec}, one core, {result['events']} events (seed analyses), {result['adl_events']} (ADL):",
        "",
        "| analysis | ours Mev/s | RDataFrame Mev/s | coffea Mev/s | I/O floor Mev/s | ours / floor (time) | ours vs RDF |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for analysis in dict.fromkeys(r["analysis"] for r in rows):
        by = {r["system"]: r for r in rows if r["analysis"] == analysis}
        rate = {
            s: f"{by[s]['events_per_s_per_core'] / 1e6:.3f}" if s in by else "-"
            for s in ("ours", "rdataframe", "coffea", "io-floor")
        }
        lines.append(
            f"| {analysis} | {rate['ours']} | {rate['rdataframe']} | {rate['coffea']} | {rate['io-floor']} | "
            f"{by['ours']['ratio_to_io_floor']:.2f} | {by['ours']['speedup_vs_rdataframe']:.1f}x |"
        )
    return lines


def _targets(results: dict) -> list[str]:
    lines = ["", "Targets (from the benchmarks issue), as measured in this run:", ""]
    if "throughput" in results:
        rows = results["throughput"]["rows"]
        ours = [r for r in rows if r["system"] == "ours"]
        worst_rdf = min(ours, key=lambda r: r["speedup_vs_rdataframe"])
        lines.append(
            f"- per-core throughput >= 1.5x RDataFrame everywhere: worst {worst_rdf['speedup_vs_rdataframe']:.2f}x "
            f"({worst_rdf['analysis']}, {worst_rdf['codec']})"
        )
        coffea = {
            (r["analysis"], r["codec"]): r["wall_min_s"] for r in rows if r["system"] == "coffea"
        }
        ratios = [
            coffea[(r["analysis"], r["codec"])] / r["wall_min_s"]
            for r in ours
            if (r["analysis"], r["codec"]) in coffea
        ]
        lines.append(
            f"- not below coffea on any ADL query: worst ours/coffea speed {min(ratios):.2f}x"
        )
        floor = [
            r
            for r in ours
            if r["analysis"] in {"adl_q1", "adl_q2", "adl_q3", "adl_q4", "adl_q5", "ds"}
        ]
        worst_floor = max(floor, key=lambda r: r["ratio_to_io_floor"])
        lines.append(
            f"- within 1.5x of the I/O floor (ADL Q1-Q5, Ds): worst {worst_floor['ratio_to_io_floor']:.2f}x "
            f"({worst_floor['analysis']}, {worst_floor['codec']})"
        )
    if "systematics" in results:
        lines.append(
            f"- 100 variations <= 3x one nominal pass: {results['systematics']['cost_100_over_1']:.1f}x"
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
        "--only", nargs="+", choices=STUDIES, default=STUDIES, help="studies to run"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every dataset size")
    parser.add_argument(
        "--repeat", type=int, default=2, help="repetitions per measurement (min and median kept)"
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
            args.data, args.codecs, size(100_000), size(400_000), args.repeat
        )
        for codec in args.codecs:
            figures.throughput(results["throughput"], out, codec)
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
    lines += _targets(results)
    summary = "summary.md" if args.only == STUDIES else f"summary-{'-'.join(args.only)}.md"
    (out / summary).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"results and figures: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
