"""Output harvesting, the "distributed Snapshot": selected events of each chunk to storage.

Each chunk writes its selected columns to ``<destination>/<analysis>-<file>-<start>-<stop>``
as ROOT or Parquet, through fsspec (a directory or any fsspec URL). File names depend only
on the chunk, so a retried task overwrites its own output. ``gather`` joins the pieces
listed in a manifest into one file on the client.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import fsspec
import uproot

FORMATS = {"parquet": ".parquet", "root": ".root"}
SNAPSHOT_TREE = "Snapshot"


@dataclass(frozen=True)
class HarvestSpec:
    destination: str
    format: str = "parquet"
    columns: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(
                f"unknown harvest format {self.format!r}; choose one of {', '.join(FORMATS)}"
            )


def _select(array: ak.Array, columns, analysis: str) -> ak.Array:
    if not columns:
        return array
    unknown = [c for c in columns if c not in array.fields]
    if unknown:
        raise ValueError(
            f"analysis {analysis!r} cannot harvest column(s) {', '.join(unknown)}; "
            f"it offers: {', '.join(array.fields)}"
        )
    return array[list(columns)]


def _write_local(array: ak.Array, path: str, fmt: str) -> None:
    if fmt == "parquet":
        ak.to_parquet(array, path)
    else:
        with uproot.recreate(path) as f:  # a TTree, as ROOT's Snapshot writes
            columns = {name: array[name] for name in array.fields}
            f.mktree(SNAPSHOT_TREE, {k: v.type.content for k, v in columns.items()}).extend(columns)


def write_snapshot(spec: HarvestSpec, analysis: str, chunk, array: ak.Array) -> dict:
    """Write one chunk's selected events; return its manifest entry."""
    array = _select(array, spec.columns, analysis)
    entry = {
        "source": chunk.file,
        "entry_start": chunk.entry_start,
        "entry_stop": chunk.entry_stop,
        "entries": len(array),
        "path": None,
    }
    if len(array) == 0:
        return entry
    fs, root = fsspec.core.url_to_fs(spec.destination)
    fs.makedirs(root, exist_ok=True)
    name = f"{analysis}-{Path(chunk.file).stem}-{chunk.entry_start}-{chunk.entry_stop}{FORMATS[spec.format]}"
    target = f"{root.rstrip('/')}/{name}"
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, name)
        _write_local(array, local, spec.format)
        fs.put_file(local, target)
    entry["path"] = fs.unstrip_protocol(target)
    return entry


def gather(manifest: list[dict], output: str | os.PathLike) -> Path:
    """Concatenate the harvested pieces of a manifest into one local file (by its suffix)."""
    output = Path(output)
    fmt = "root" if output.suffix == ".root" else "parquet"
    pieces = []
    for entry in sorted(manifest, key=lambda e: (e["source"], e["entry_start"])):
        if entry["path"] is None:
            continue
        if entry["path"].endswith(".root"):
            with fsspec.open(entry["path"], "rb") as f, uproot.open(f) as rf:
                pieces.append(rf[SNAPSHOT_TREE].arrays(library="ak"))
        else:
            pieces.append(ak.from_parquet(entry["path"]))
    if not pieces:
        raise ValueError("the manifest lists no harvested events to gather")
    output.parent.mkdir(parents=True, exist_ok=True)
    _write_local(ak.concatenate(pieces), str(output), fmt)
    return output
