"""Memory a chunk freed kept for the next one, rather than handed back to the kernel.

glibc returns a large freed block to the kernel: it unmaps a block it mapped on its own
(above ``M_MMAP_THRESHOLD``, 128 KiB at first) and trims the top of the heap once more than
``M_TRIM_THRESHOLD`` is free there. It raises both as it sees large blocks freed, but only
to the largest of them, so a chunk that frees a few megabytes of arrays hands their pages
back, and the next chunk's arrays page-fault on their first write: 2,000 faults a 100k-event
chunk of DT (8 MB), 2 ms of its 50 (benchmarks/results/2026-11-23).

:func:`keep_freed_memory` sets both thresholds where glibc's own raising ends (32 MiB, and
twice that for the trim): the memory a process keeps is what glibc would keep after one
32 MiB block, and the pages of a chunk's arrays are reused by the next. Dask's nanny asks
its workers to trim at 64 KiB (``MALLOC_TRIM_THRESHOLD_``) to keep unmanaged memory low; a
worker running chunks keeps at most 64 MiB free per malloc arena instead.
"""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # glibc's largest (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # where glibc's own raising puts it

_set: bool | None = None


def keep_freed_memory() -> bool:
    """Set the thresholds once per process; whether they are set (False where the C
    library has no ``mallopt``, as on musl or macOS)."""
    global _set
    if _set is None:
        mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # the process' own C library
        _set = mallopt is not None and all(
            mallopt(parameter, value) == 1
            for parameter, value in (
                (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            )
        )
    return _set
