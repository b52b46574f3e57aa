"""Jagged columns to regular numpy tables, fast: many selections are cheaper on a padded table."""

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
