"""Small helpers shared by the generators: jagged arrays, event ids, kinematics."""

from __future__ import annotations

import awkward as ak
import numpy as np


def jagged(counts: np.ndarray, flat: np.ndarray) -> ak.Array:
    """A jagged array with ``counts[i]`` entries in event ``i``."""
    return ak.unflatten(flat, counts)


def record(**branches: ak.Array) -> ak.Array:
    """A collection record whose fields are full NanoAOD branch names."""
    return ak.zip(branches)


def local_index(counts: np.ndarray) -> np.ndarray:
    """Index of each flat entry within its event: 0, 1, ... per event."""
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(counts.sum()) - starts


def event_header(first_event: int, n: int, run: int = 1) -> dict[str, np.ndarray]:
    """NanoAOD's event identification branches, unique within a dataset."""
    event = np.arange(first_event, first_event + n, dtype=np.uint64)
    return {
        "run": np.full(n, run, dtype=np.uint32),
        "luminosityBlock": (event // 1000 + 1).astype(np.uint32),
        "event": event,
    }


def f32(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def i32(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int32)


def uniform_phi(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(-np.pi, np.pi, n)
