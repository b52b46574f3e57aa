"""Reading from grid storage with a token, measured (issue 15, part 4): ours on the Ds and an ADL
dataset from local files, over ``root://`` and ``https://`` from the token-protected XRootD
storage, and through an XCache in front of it (warm: the warm-up run fills it), all on
loopback.

The storage, the cache and the development IAM are the local facility's (real processes, TLS
with a CA made for the run; alice's token from the IAM's login form). Each row runs in a
process of its own pinned to the benchmarks' core (:mod:`benchmarks.pinned`, interleaved
rounds); the XRootD servers are pinned to the other cores, so the client's core is its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from analysis_kernels import get_analysis
from analysis_kernels.executor.chunks import expand_inputs
from benchmarks.common import branch_bytes, dataset, save
from benchmarks.pinned import core
from benchmarks.pinned import measure_together as pinned
from hub_config.local.facility import LocalFacility
from hub_config.local.storage import StorageServer
from hub_config.local.xcache import ServiceCredential, start_cache

SOURCES = ["local", "root", "https", "xcache-root", "xcache-https"]


def _pin_elsewhere(pid: int) -> None:
    """Every thread of a server onto the cores the benchmarks' core is not."""
    others = sorted(os.sched_getaffinity(0) - {core()})
    if others:
        cores = ",".join(map(str, others))
        subprocess.run(
            ["taskset", "-a", "-p", "-c", cores, str(pid)], check=True, stdout=subprocess.DEVNULL
        )


@contextlib.contextmanager
def _grid(datasets: dict[str, Path]):
    """IAM, storage with the datasets under /store/cms/bench/<analysis>, a cache in front, and
    this process as alice (her token in a 0600 file; the pinned processes inherit it)."""
    from tests.storage.tokens import login

    directory = Path(tempfile.mkdtemp(prefix="facility-bench-grid-"))
    directory.chmod(0o755)
    facility = LocalFacility(directory / "state", tls=True, hub=False, log_dir=directory / "logs")
    robot = ServiceCredential()
    servers = []
    saved = dict(os.environ)
    try:
        facility.start()
        origin = StorageServer(
            directory / "origin",
            issuer=facility.issuer,
            ca=facility.ca,
            services={robot.issuer: robot.jwks()},
        )
        for analysis, path in datasets.items():
            origin.publish(path, f"/store/cms/bench/{analysis}")
        servers.append(origin.start())
        servers.append(start_cache(origin, directory / "xcache", credential=robot.token()))
        for server in servers:
            _pin_elsewhere(server.process.pid)
        token = directory / "token"
        fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(login(facility, "alice", "alice-pw")["access_token"] + "\n")
        os.environ.update(facility.client_environment() | {"BEARER_TOKEN_FILE": str(token)})
        os.environ.pop("BEARER_TOKEN", None)
        yield servers
    finally:
        os.environ.clear()
        os.environ.update(saved)
        for server in reversed(servers):
            server.stop()
        facility.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _urls(source: str, servers: list[StorageServer], analysis: str, files: list[str]) -> list[str]:
    if source == "local":
        return files
    origin, cache = servers
    server = cache if source.startswith("xcache") else origin
    scheme = "https" if source.endswith("https") else "root"
    return [server.url(f"/store/cms/bench/{analysis}/{Path(f).name}", scheme) for f in files]


def measure(
    data_root: Path,
    analyses: dict[str, int],
    codec: str = "ZSTD",
    min_run_s: float = 3.0,
    runs: int = 5,
    clock: str = "wall",
) -> dict:
    """``analyses``: analysis name to the events of its one file."""
    files = {
        analysis: expand_inputs(
            dataset(get_analysis(analysis).generator, data_root, 1, events, codec)
        )
        for analysis, events in analyses.items()
    }
    rows = []
    with _grid({a: Path(f[0]).parent for a, f in files.items()}) as servers:
        for analysis, events in analyses.items():
            compressed = branch_bytes(analysis, files[analysis], "compressed")
            specs = {
                source: {
                    "system": "ours",
                    "analysis": analysis,
                    "files": _urls(source, servers, analysis, files[analysis]),
                    "params": {},
                    "chunk_size": None,
                    "min_run_s": min_run_s,
                }
                for source in SOURCES
            }
            for source, t in pinned(specs, runs).items():
                t.update(t[clock])
                row = {
                    "analysis": analysis,
                    "codec": codec,
                    "source": source,
                    "events": events,
                    **t,
                    "events_per_s": events / t["median_s"],
                    "MB_per_s": compressed / 1e6 / t["median_s"],
                }
                rows.append(row)
                print(
                    f"  {analysis:7s} {source:13s} {row['events_per_s'] / 1e6:6.2f} Mev/s "
                    f"{row['MB_per_s']:7.1f} MB/s  spread {100 * t['spread']:4.1f}%",
                    flush=True,
                )
    result = {"rows": rows, "codec": codec, "min_run_s": min_run_s, "runs": runs, "clock": clock}
    save("storage_read", result)
    return result


def table(result: dict) -> list[str]:
    """Mev/s and MB/s per core of the median run, and of the fastest (the least disturbed by
    other tenants of a shared machine); n.q. marks a median whose runs spread over 10%."""
    lines = [
        f"Reading with a token, on loopback (codec {result['codec']}, {result['clock']} time of "
        f"{result['runs']} runs of at least {result['min_run_s']:g} s, the client pinned to one "
        "core, the servers on the others): Mev/s and MB/s (compressed bytes of the declared "
        "branches) per core, median run / fastest run; n.q. = min-max spread over 10%",
        "",
        "| analysis | " + " | ".join(SOURCES) + " |",
        "| --- |" + " --- |" * len(SOURCES),
    ]
    for analysis in dict.fromkeys(r["analysis"] for r in result["rows"]):
        by = {r["source"]: r for r in result["rows"] if r["analysis"] == analysis}
        cells = []
        for source in SOURCES:
            row = by[source]
            mb = row["MB_per_s"] * row["median_s"]  # the MB of one call
            cells.append(
                f"{row['events'] / row['median_s'] / 1e6:.2f} / "
                f"{row['events'] / row['min_s'] / 1e6:.2f} Mev/s, "
                f"{mb / row['median_s']:.0f} / {mb / row['min_s']:.0f} MB/s"
                + ("" if row["spread"] <= 0.10 else " (n.q.)")
            )
        lines.append(f"| {analysis} | {' | '.join(cells)} |")
    return lines
