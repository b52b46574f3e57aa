"""The ``facility`` command: generate datasets and run analyses."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from analysis_kernels.analyses import ANALYSES, get_analysis
from analysis_kernels.executor import DEFAULT_CHUNK_SIZE, HarvestSpec, gather, run
from analysis_kernels.executor.harvest import FORMATS
from analysis_kernels.executor.user import SCHEMAS
from analysis_kernels.generate import GENERATORS, DatasetSpec, events_for_size, generate_dataset
from analysis_kernels.generate.writer import CODECS, DEFAULT_CODEC, DEFAULT_LEVEL
from analysis_kernels.plots import simple_histograms
from analysis_kernels.schema import TREE


def _param(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--param wants NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facility", description="HEP analysis facility: data and analyses."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser(
        "generate",
        help="write a synthetic NanoAOD-like dataset with its truth",
        description="Write <analysis>_NNNN.root files and truth.json into --output.",
    )
    gen.add_argument(
        "analysis", choices=sorted(GENERATORS), help="which analysis the dataset is for"
    )
    gen.add_argument("--output", "-o", required=True, type=Path, help="directory to write into")
    gen.add_argument("--files", type=int, default=2, help="number of files (default: 2)")
    gen.add_argument(
        "--events-per-file", type=int, default=100_000, help="events in each file (default: 100000)"
    )
    gen.add_argument(
        "--total-gb",
        type=float,
        default=None,
        help="target total size in GB; sets --events-per-file from a measured sample",
    )
    gen.add_argument(
        "--codec",
        default=DEFAULT_CODEC,
        choices=sorted(CODECS),
        help=f"compression codec (default: {DEFAULT_CODEC})",
    )
    gen.add_argument(
        "--level",
        type=int,
        default=DEFAULT_LEVEL,
        help=f"compression level (default: {DEFAULT_LEVEL})",
    )
    gen.add_argument(
        "--seed", type=int, default=1, help="random seed; same seed, same files (default: 1)"
    )
    gen.add_argument(
        "--workers", type=int, default=None, help="parallel writer processes (default: CPU count)"
    )
    gen.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    ana = sub.add_parser(
        "analyze",
        help="run an analysis on any executor",
        description="Run an analysis over ROOT files and print its summary.",
    )
    ana.add_argument(
        "analysis",
        help=f"a built-in analysis ({', '.join(ANALYSES)}) or your own: "
        "path/to/analysis.py:NAME or package.module:NAME (a function of the events, "
        "an object with process/postprocess, or a coffea processor)",
    )
    ana.add_argument(
        "inputs", nargs="+", help="ROOT files, directories (all *.root inside), globs or URLs"
    )
    ana.add_argument(
        "--executor",
        "-e",
        default="serial",
        help="serial | local[:N] | tcp://host:port | kube[:N] (default: serial)",
    )
    ana.add_argument(
        "--chunk-size",
        type=int,
        default=DEFAULT_CHUNK_SIZE,
        help=f"entries per work unit (default: {DEFAULT_CHUNK_SIZE})",
    )
    ana.add_argument(
        "--param",
        "-p",
        type=_param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="analysis parameter, e.g. n_variations=100 (stop) or mc_truth=true (ds)",
    )
    ana.add_argument("--tree", default=TREE, help=f"TTree or RNTuple to read (default: {TREE})")
    ana.add_argument(
        "--columns",
        help="your analysis: comma-separated columns it reads (default: those its code touches)",
    )
    ana.add_argument(
        "--schema",
        choices=SCHEMAS,
        help="your analysis: flat branches (default) or nanoaod (coffea NanoEvents, events.Muon.pt)",
    )
    ana.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip unreadable chunks and list them in the report instead of stopping",
    )
    ana.add_argument(
        "--harvest",
        metavar="DEST",
        help="write selected events per chunk to DEST (dir or fsspec URL)",
    )
    ana.add_argument(
        "--harvest-format", choices=sorted(FORMATS), default="parquet", help="harvest file format"
    )
    ana.add_argument(
        "--harvest-columns", help="comma-separated columns to harvest (default: all offered)"
    )
    ana.add_argument(
        "--gather",
        type=Path,
        metavar="FILE",
        help="join harvested pieces into FILE (.root or .parquet)",
    )
    ana.add_argument(
        "--plots", type=Path, metavar="DIR", help="write the analysis' figures into DIR"
    )
    ana.add_argument(
        "--report", type=Path, metavar="DIR", help="save report.json and histograms.pkl into DIR"
    )
    ana.add_argument("--json", action="store_true", help="print the whole report as JSON")
    ana.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _generate(args) -> int:
    events = args.events_per_file
    if args.total_gb is not None:
        events = events_for_size(args.analysis, args.total_gb, args.files, args.codec, args.level)
    spec = DatasetSpec(args.analysis, args.files, events, args.codec, args.level, args.seed)
    truth = generate_dataset(spec, args.output, workers=args.workers, progress=not args.no_progress)
    size = truth["totals"]["bytes"] / 1e9
    print(
        f"wrote {args.files} file(s), {truth['totals']['events']} events, {size:.3f} GB to {args.output}"
    )
    return 0


def _print_summary(report, builtin: bool) -> None:
    title = get_analysis(report.analysis).title if builtin else report.analysis
    print(f"{title}  [{report.executor}]")
    print(
        f"  events: {report.events_processed} processed of {report.events_total}"
        f" ({report.events_failed} failed, {len(report.unreadable_files)} unreadable file(s))"
    )
    print(
        f"  wall {report.wall_time:.2f} s, CPU {report.cpu_time:.2f} s, read {report.bytes_read / 1e6:.1f} MB"
        f" in {report.chunks} chunk(s)"
    )
    for failure in report.failed_chunks:
        print(
            f"  FAILED {failure['file']} [{failure['entry_start']}, {failure['entry_stop']}): {failure['error']}"
        )
    for failure in report.unreadable_files:
        print(f"  UNREADABLE {failure['file']}: {failure['error']}")
    print(f"  columns read: {', '.join(report.columns_read) or 'none'}")
    if not builtin:
        for key, value in sorted(report.output.items()):
            shown = f"{type(value).__name__}, {value.sum()}" if hasattr(value, "axes") else value
            print(f"  {key}: {shown}")
        if report.summary:
            print(f"  summary (postprocess): {report.summary}")
        return
    for line in get_analysis(report.analysis).headline(report.summary) if report.summary else []:
        print(f"  {line}")


def _analyze(args) -> int:
    harvest = None
    if args.harvest:
        columns = tuple(args.harvest_columns.split(",")) if args.harvest_columns else None
        harvest = HarvestSpec(args.harvest, args.harvest_format, columns)
    report = run(
        args.analysis,
        args.inputs,
        executor=args.executor,
        params=dict(args.param),
        chunk_size=args.chunk_size,
        skip_bad=args.skip_bad,
        harvest=harvest,
        tree=args.tree,
        progress=not args.no_progress,
        columns=args.columns.split(",") if args.columns else None,
        schema=args.schema,
    )
    builtin = args.analysis in ANALYSES
    if args.json:
        print(json.dumps(report.to_dict(), indent=1, default=str))
    else:
        _print_summary(report, builtin)
    if args.report:
        report.save(args.report)
    if args.gather:
        if harvest is None:
            raise ValueError("--gather needs --harvest")
        print(f"gathered {gather(report.harvest_manifest, args.gather)}")
    if args.plots and report.output:
        if builtin:
            paths = get_analysis(args.analysis).plot(report.output, report.summary, args.plots)
        else:
            paths = simple_histograms(report.output, {}, args.plots, prefix=report.analysis)
        for path in paths:
            print(f"plot: {path}")
    return 0 if report.complete else 3


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _generate(args) if args.command == "generate" else _analyze(args)
    except (ValueError, RuntimeError, OSError) as err:
        print(f"facility: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
