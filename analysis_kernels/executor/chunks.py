"""Work units: (file, entry range) chunks, planned from the files' entry counts."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from analysis_kernels import grid
from analysis_kernels.errors import InputError
from analysis_kernels.schema import TREE, open_tree


@dataclass(frozen=True)
class Chunk:
    index: int
    file: str
    entry_start: int
    entry_stop: int

    @property
    def events(self) -> int:
        return self.entry_stop - self.entry_start


def expand_inputs(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Files from a directory (its ``*.root``), a glob, a single path or URL, or a list of them.

    A ``root://`` directory or glob is listed on the storage with the user's token.
    """
    items = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    files: list[str] = []
    for item in map(str, items):
        if item.startswith(grid.XROOTD_SCHEMES) and (glob.has_magic(item) or grid.is_dir(item)):
            files += grid.listing(item)
        elif "://" in item and not item.startswith("file://"):
            files.append(item)
        elif os.path.isdir(item):
            files += sorted(str(p) for p in Path(item).glob("*.root"))
        elif glob.has_magic(item):
            files += sorted(glob.glob(item))
        else:
            files.append(item)
    if not files:
        raise ValueError(f"no input files found in {', '.join(map(str, items))}")
    return files


def plan(
    files: list[str], chunk_size: int, tree: str = TREE, skip_bad: bool = False
) -> tuple[list[Chunk], dict[str, int], list[dict]]:
    """Chunks of at most ``chunk_size`` entries, entries per file, and files that could not be opened.

    A file that cannot be opened has no known entry count: it raises, or with ``skip_bad``
    it is listed as failed with its error.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    chunks: list[Chunk] = []
    entries: dict[str, int] = {}
    unreadable: list[dict] = []
    for path in files:
        try:
            t = open_tree(path, tree)
            n = t.num_entries
        except InputError as err:
            if not skip_bad:
                raise
            unreadable.append({"file": path, "error": str(err)})
            continue
        entries[path] = n
        for start in range(0, n, chunk_size):
            chunks.append(Chunk(len(chunks), path, start, min(start + chunk_size, n)))
    return chunks, entries, unreadable
