"""A chunk's arrays reuse the pages the last chunk freed, instead of page-faulting on fresh
ones: counted as the minor page faults of a process that allocates, writes and frees a
chunk's worth of arrays over and over, with and without :func:`keep_freed_memory`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CHUNKS = """
import json, resource, sys
import numpy as np
from analysis_kernels.executor.allocator import keep_freed_memory

kept = keep_freed_memory() if sys.argv[1] == "kept" else False

def chunk():  # DT's compact outputs of a 100k-event chunk: 8 arrays, 13 MB
    arrays = [np.empty(440_000, d) for d in ("i4", "i4", "i4", "?", "?", "f4", "f4", "i8")]
    for a in arrays:
        a[:] = 1

for _ in range(3):  # glibc raises its thresholds as it sees blocks freed: let it
    chunk()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    chunk()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"kept": kept, "faults_per_chunk": faults / 10}))
"""


def _chunks(mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHUNKS, mode], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def glibc_default():
    return _chunks("default")


def test_by_default_each_chunk_page_faults_on_fresh_pages(glibc_default):
    """The cost this module removes: glibc hands a chunk's freed arrays back to the kernel
    (about 3,200 faults a chunk here, one per 4 KiB page written)."""
    assert glibc_default["faults_per_chunk"] > 1000


def test_with_freed_memory_kept_a_chunk_reuses_the_last_ones_pages(glibc_default):
    result = _chunks("kept")
    assert result["kept"] is True
    assert result["faults_per_chunk"] < 20


def test_every_chunk_a_worker_runs_keeps_freed_memory(datasets):
    """The executor sets it in the process that runs the chunks (a Dask worker, or the
    client for a serial run)."""
    code = (
        "from analysis_kernels import run\n"
        "from analysis_kernels.executor import allocator\n"
        "assert allocator._set is None\n"
        f"run('ds', [{str(datasets['ds'])!r}], chunk_size=2000)\n"
        "print(allocator._set)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "True"
