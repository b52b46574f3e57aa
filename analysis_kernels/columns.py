"""Jagged columns as numpy buffers: padded tables, or offsets and values for compiled kernels."""

from __future__ import annotations

import awkward as ak
import numpy as np


def padded(jagged: ak.Array, width: int, fill, dtype=None) -> np.ndarray:
    """An (events, width) table of a one-level jagged array: padded with ``fill``, clipped at ``width``."""
    counts = ak.to_numpy(ak.num(jagged, axis=1))
    flat = ak.to_numpy(ak.flatten(jagged, axis=1))
    out = np.full((len(counts), width), fill, dtype=dtype or flat.dtype)
    event = np.repeat(np.arange(len(counts)), counts)
    local = np.arange(len(flat)) - np.repeat(np.cumsum(counts) - counts, counts)
    keep = local < width
    out[event[keep], local[keep]] = flat[keep]
    return out


def jagged(array: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and flat values of a one-level jagged array, for compiled kernels.

    Offsets start at 0, so columns of one collection share them and index alike. Read
    columns are a ListOffsetArray over a NumpyArray: their buffers come back without a copy.
    Anything else (a sliced or masked array) is flattened first.
    """
    layout = ak.to_layout(array)
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(
        layout.content, ak.contents.NumpyArray
    ):
        offsets, values = np.asarray(layout.offsets.data), np.asarray(layout.content.data)
        if offsets[0] == 0:
            return offsets, values
        return offsets - offsets[0], values[offsets[0] : offsets[-1]]
    counts = ak.to_numpy(ak.num(array, axis=1))
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets, ak.to_numpy(ak.flatten(array, axis=1))
