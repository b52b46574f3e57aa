"""Output harvesting, the "distributed Snapshot": selected events of each chunk to storage.

Each chunk writes its selected columns to ``<destination>/<analysis>-<file>-<start>-<stop>``
as ROOT or Parquet, through fsspec (a directory or any fsspec URL), or to grid storage
(``root://``, ``https://``) with the user's token. File names depend only on the chunk, so a
retried task overwrites its own output. ``gather`` joins the pieces listed in a manifest into
one file, local or on grid storage.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import fsspec
import uproot

from analysis_kernels import grid

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
    name = f"{analysis}-{Path(chunk.file).stem}-{chunk.entry_start}-{chunk.entry_stop}{FORMATS[spec.format]}"
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, name)
        _write_local(array, local, spec.format)
        if grid.is_remote(spec.destination):
            entry["path"] = f"{spec.destination.rstrip('/')}/{name}"
            grid.put_file(local, entry["path"])
            return entry
        fs, root = fsspec.core.url_to_fs(spec.destination)
        fs.makedirs(root, exist_ok=True)
        target = f"{root.rstrip('/')}/{name}"
        fs.put_file(local, target)
    entry["path"] = fs.unstrip_protocol(target)
    return entry


def _read_piece(path: str) -> ak.Array:
    if path.endswith(".root"):
        opened = grid.open_input(path) if grid.is_remote(path) else fsspec.open(path, "rb")
        with opened as f, uproot.open(f) as rf:
            return rf[SNAPSHOT_TREE].arrays(library="ak")
    if grid.is_remote(path):
        with grid.open_input(path) as f:
            return ak.from_parquet(io.BytesIO(f.read()))
    return ak.from_parquet(path)


def gather(manifest: list[dict], output: str | os.PathLike) -> Path | str:
    """Concatenate the harvested pieces of a manifest into one file (format by its suffix):
    a local path, or a ``root://``/``https://`` URL written with the user's token."""
    fmt = "root" if str(output).endswith(".root") else "parquet"
    pieces = [
        _read_piece(entry["path"])
        for entry in sorted(manifest, key=lambda e: (e["source"], e["entry_start"]))
        if entry["path"] is not None
    ]
    if not pieces:
        raise ValueError("the manifest lists no harvested events to gather")
    if grid.is_remote(output):
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, f"gathered{FORMATS[fmt]}")
            _write_local(ak.concatenate(pieces), local, fmt)
            grid.put_file(local, str(output))
        return str(output)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    _write_local(ak.concatenate(pieces), str(output), fmt)
    return output
