"""Write generated batches to a ROOT file as a NanoAOD-style ``Events`` tree."""

from __future__ import annotations

from collections.abc import Iterable

import uproot

from analysis_kernels.generate.precision import round_batch
from analysis_kernels.schema import TREE

CODECS = {"ZLIB": uproot.ZLIB, "LZMA": uproot.LZMA, "LZ4": uproot.LZ4, "ZSTD": uproot.ZSTD}
DEFAULT_CODEC = "ZSTD"
DEFAULT_LEVEL = 5


def compression(codec: str, level: int):
    """The uproot compression object for a codec name, or a clear error."""
    try:
        return CODECS[codec.upper()](level)
    except KeyError:
        raise ValueError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}") from None


def write_events(path: str, batches: Iterable[dict], codec: str, level: int) -> int:
    """Write batches (branch name -> array, records for collections) as one basket each.

    Records are collections: their fields are full branch names (``Muon_pt``) and share the
    counter ``n<record name>``, as in NanoAOD. float32 branches are first rounded to the
    mantissa bits NanoAOD keeps for them (:mod:`analysis_kernels.generate.precision`).
    Returns the number of events written.
    """
    total = 0
    with uproot.recreate(path, compression=compression(codec, level)) as file:
        tree = None
        for batch in batches:
            batch = round_batch(batch)
            if tree is None:
                tree = file.mktree(
                    TREE,
                    {
                        name: array.type if hasattr(array, "fields") else array.dtype
                        for name, array in batch.items()
                    },
                    title="Events",
                    field_name=lambda _outer, inner: inner,
                    counter_name=lambda counted: "n" + counted,
                )
            tree.extend(batch)
            total += len(next(iter(batch.values())))
    return total
