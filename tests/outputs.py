"""Comparing the outputs of two runs of an analysis, for the tests that run it two ways."""

from __future__ import annotations

import numpy as np


def same_output(a: dict, b: dict) -> None:
    """Histograms equal bin for bin (variances included), other outputs equal."""
    assert a.keys() == b.keys()
    for key, value in a.items():
        if hasattr(value, "view"):
            assert np.array_equal(value.view(flow=True), b[key].view(flow=True)), key
        else:
            assert value == b[key], key
