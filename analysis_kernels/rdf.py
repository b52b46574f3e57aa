"""Distributed ROOT RDataFrame on the facility's Dask clusters, the seeds' way, plus what they missed.

ROOT 6.40 runs ``ROOT.RDataFrame(tree, files, executor=client)`` over a Dask cluster; C++
helpers reach the workers through ``ROOT.RDF.Experimental.Distributed.DistributeHeaders`` (the
seeds' ``Utilities.h``) or ``DistributeCppCode``. This module adds:

- :func:`rdataframe`: inputs named as for the executor (directories, globs, URLs), and a clear
  error when the workers are not single-threaded (each task JIT-compiles and runs an event loop
  in the worker's one ROOT interpreter, which tasks on other threads of the same process would
  share).
- :func:`snapshot`: a distributed Snapshot that harvests the pieces each worker wrote to its own
  disk into one file on the client or at any fsspec location, with a manifest. ROOT alone leaves
  ``snap_0.root``, ``snap_2.root``... wherever each worker ran, and nothing gathers them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path

import fsspec
from distributed import Client

from analysis_kernels.executor.chunks import expand_inputs


def check_single_threaded(client: Client) -> None:
    """Refuse a cluster whose workers run more than one thread, naming them."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    if not workers:
        raise RuntimeError(f"the Dask cluster at {client.scheduler.address} has no workers")
    threaded = {addr: w["nthreads"] for addr, w in workers.items() if w["nthreads"] != 1}
    if threaded:
        listed = ", ".join(f"{addr} ({n} threads)" for addr, n in sorted(threaded.items()))
        raise RuntimeError(
            "distributed RDataFrame needs single-threaded Dask workers: each task runs ROOT's "
            "interpreter and an event loop in the worker process, which tasks on other threads "
            f"would share. Workers with more than one thread: {listed}. Start workers with "
            "--nthreads 1 (dask worker) or threads_per_worker=1 (LocalCluster); the facility's "
            "clusters (facility_cluster, executor 'local:N') already are."
        )


def rdataframe(tree: str, inputs, client: Client, npartitions: int | None = None):
    """``ROOT.RDataFrame(tree, files, executor=client)`` over the executor's kind of inputs."""
    import ROOT

    check_single_threaded(client)
    files = expand_inputs(inputs)
    options = {"executor": client}
    if npartitions:
        options["npartitions"] = npartitions
    return ROOT.RDataFrame(tree, files, **options)


def _collect_pieces(directory: str) -> dict[str, bytes]:
    """On a worker: the Snapshot pieces it finds, then its scratch directory removed.

    Workers of one machine share the directory, so another worker may take a piece and
    remove it between this one's listing and its reading; that worker returns it."""
    pieces = {}
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return pieces
    for name in names:
        try:
            with open(os.path.join(directory, name), "rb") as f:
                pieces[name] = f.read()
        except FileNotFoundError:
            continue
    shutil.rmtree(directory, ignore_errors=True)
    return pieces


def snapshot(
    df, tree: str, output: str | os.PathLike, columns: Iterable[str], client: Client
) -> dict:
    """Run ``df.Snapshot`` on the workers and harvest one file at ``output`` (a path or fsspec
    URL ending in ``.root``), with ``<output stem>.manifest.json``; return the manifest.

    Each partition's piece comes back from the worker that wrote it (retried partitions write
    the same name, so a piece is taken once) and pieces are joined in partition order, so the
    file holds the entries in the order a local Snapshot writes them.
    """
    import ROOT
    import uproot

    output = str(output)
    if not output.endswith(".root"):
        raise ValueError(f"snapshot output {output!r} must be a .root file (path or URL)")
    columns = list(columns)
    scratch = os.path.join(tempfile.gettempdir(), f"facility-snapshot-{uuid.uuid4().hex}")
    client.run(os.makedirs, scratch, exist_ok=True)
    try:
        df.Snapshot(tree, f"{scratch}/part.root", columns)
        by_worker = client.run(_collect_pieces, scratch)
    finally:
        client.run(shutil.rmtree, scratch, ignore_errors=True)
    pieces = {}
    for worker, files in sorted(by_worker.items()):
        for name, data in files.items():
            pieces.setdefault(name, (worker, data))
    if not pieces:
        raise RuntimeError(f"the distributed Snapshot of {tree!r} left no file on any worker")
    order = sorted(pieces, key=lambda n: int(re.search(r"_(\d+)\.root$", n).group(1)))
    manifest = {"tree": tree, "columns": columns, "output": output, "pieces": []}
    with tempfile.TemporaryDirectory() as tmp:
        merger = ROOT.TFileMerger(False, False)
        merged = os.path.join(tmp, "merged.root")
        merger.OutputFile(merged, "RECREATE")
        for name in order:
            worker, data = pieces[name]
            local = Path(tmp, name)
            local.write_bytes(data)
            with uproot.open(local) as f:
                entries = f[tree].num_entries
            manifest["pieces"].append(
                {"piece": name, "worker": worker, "entries": entries, "bytes": len(data)}
            )
            merger.AddFile(str(local), False)
        if not merger.Merge():
            raise RuntimeError(f"could not merge the Snapshot pieces of {tree!r} into {output}")
        manifest["entries"] = sum(p["entries"] for p in manifest["pieces"])
        fs, path = fsspec.core.url_to_fs(output)
        fs.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fs.put_file(merged, path)
    with fsspec.open(output[: -len(".root")] + ".manifest.json", "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest
