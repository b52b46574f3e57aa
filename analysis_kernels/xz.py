"""ROOT's XZ (LZMA) blocks, decompressed with a liblzma as fast as ROOT's own.

Why ROOT decompressed LZMA faster than we did: its liblzma, not the way it calls it. The PyPI
ROOT links its builtin liblzma 5.8.2 into ``libCore.so``; Python's ``lzma`` module links the
system's liblzma (5.4.1 on Debian bookworm), and cramjam's ``xz`` bundles xz 5.2. xz 5.6 and
5.8 sped up the LZMA decoder. Measured on the Ds benchmark file's LZMA baskets of the Ds
branches (30 blocks, 9.36 MB compressed, 17.46 MB decompressed), one pinned core
(``taskset -c 1``), process CPU time, all variants interleaved in one process, 9 rounds:
median time (min-max), and the median of the per-round ratios to ROOT's time (min-max):

=========================================  ======================  ===================
decoder                                    CPU s                   time / ROOT's
=========================================  ======================  ===================
Python ``lzma`` (liblzma 5.4.1)            0.691 (0.661-0.751)     1.62 (1.56-1.85)
liblzma 5.4.1 via ctypes, one lzma_code    0.691 (0.656-0.765)     1.70 (1.45-1.85)
into the final buffer, stream reused
``lzma_mt.decompress`` (liblzma 5.8.1)     0.404 (0.380-0.442)     0.98 (0.91-1.04)
liblzma 5.8.1 via ctypes, as above         0.408 (0.386-0.425)     0.98 (0.91-1.01)
ROOT ``R__unzip`` (builtin 5.8.2)          0.417 (0.388-0.451)     1.00
=========================================  ======================  ===================

All 50 XZ blocks of that file (15.0 MB to 28.9 MB), with this module's own benchmark: Python's
``lzma`` 1.149 s (25 MB/s), :func:`decompress` 0.638 s (45 MB/s), ROOT 0.651 s; time / ROOT's
1.78, 1.00, 1.00. (``taskset -c 1 python -m analysis_kernels.xz FILE.root`` prints those three rows for any
file; the machine was shared, so absolute times vary between runs, up to 2x against quiet
runs, the ratios by a few percent.) The 5.4.1 library called the way ROOT calls it (one
``lzma_code`` into the final buffer, no growing output buffer, no per-block allocation) is as
slow as Python's module, and a 5.8 library called the way Python calls it is as fast as
ROOT: the buffer handling costs nothing measurable, the library is the whole gap (two 5.8
builds, ROOT's and the wheel's, agree; 5.4.1 is Debian's build: the xz 5.6/5.8 decoder work
and build flags are not told apart here). So :func:`decompress` uses the PyPI wheel
``lzma-mt`` (a Cython port of CPython's ``_lzma`` with xz 5.8 linked statically; single
threaded here: with ``threads=1`` it runs the same liblzma decoder the stdlib does), and falls back to
Python's ``lzma`` where that wheel is missing or links an xz older than 5.6 (a source build
against the system's library). It is a dependency of the package and pinned in the images'
lock; the output is byte-for-byte ``lzma.decompress``'s.

:func:`install` makes uproot's own LZMA blocks (``uproot.compression.LZMA`` and the
decompressor uproot's reader dispatches ``XZ`` blocks to) go through :func:`decompress` too;
it is explicit, never an import side effect.
"""

from __future__ import annotations

import lzma
import os
import sys
from collections.abc import Callable

# liblzma's decoder speedups that close the gap with ROOT came with xz 5.6.
MIN_FAST_VERSION = (5, 6)


class XZError(lzma.LZMAError, ValueError):
    """A ROOT XZ block that does not decompress (corrupt, truncated, or the wrong size)."""


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _load() -> tuple[str, str | None, Callable[[bytes], bytes], tuple[type[Exception], ...]]:
    """(name, liblzma version, decompress(data), errors it raises): the fastest at hand.

    ``FACILITY_XZ=stdlib`` forces Python's ``lzma`` (for comparisons)."""
    stdlib = ("lzma", None, lzma.decompress, (lzma.LZMAError,))
    if os.environ.get("FACILITY_XZ", "").lower() == "stdlib":
        return stdlib
    try:
        import lzma_mt
    except ImportError:
        return stdlib
    version = lzma_mt.get_xz_version()
    if _version_tuple(version) < MIN_FAST_VERSION:
        return stdlib

    def fast(data, _decompress=lzma_mt.decompress):
        return _decompress(data, threads=1)

    return "lzma_mt", version, fast, (lzma_mt.LZMAError, lzma.LZMAError)


def _stdlib_version() -> str:
    """The liblzma version behind Python's ``lzma`` (from the loaded library, via ctypes)."""
    try:
        import _lzma
        import ctypes

        lib = ctypes.CDLL(_lzma.__file__)
        lib.lzma_version_string.restype = ctypes.c_char_p
        return lib.lzma_version_string().decode()
    except Exception:  # a static build or an unusual platform: the version is informative only
        return "unknown"


BACKEND, LIBLZMA_VERSION, _decompress, _ERRORS = _load()


def backend() -> str:
    """Which implementation :func:`decompress` uses, e.g. ``lzma_mt (liblzma 5.8.1)``."""
    return f"{BACKEND} (liblzma {LIBLZMA_VERSION or _stdlib_version()})"


def decompress(data: bytes, size: int) -> bytes:
    """One ROOT XZ block's payload (after ROOT's 9-byte block header) into ``size`` bytes.

    The output is what ``lzma.decompress(data)`` returns; a corrupt or truncated block, or one
    that decompresses to another size than its header says, raises :class:`XZError`."""
    try:
        out = _decompress(data)
    except _ERRORS as err:
        raise XZError(
            f"corrupt ROOT XZ block ({len(data)} compressed bytes, {size} expected): {err}"
        ) from err
    if len(out) != size:
        raise XZError(
            f"ROOT XZ block of {len(data)} compressed bytes decompressed to {len(out)} bytes,"
            f" its header says {size}"
        )
    return out


ORIGINAL = "_facility_uproot_decompress"  # where install() keeps uproot's own


def install() -> bool:
    """Route uproot's LZMA blocks through :func:`decompress` (idempotent).

    Replaces ``decompress`` of uproot's ``_DecompressLZMA``, the class behind both
    ``uproot.compression.LZMA`` and the decompressor uproot's basket reader dispatches ``XZ``
    blocks to, so the I/O floor and every uproot read path gain it. Returns whether the fast
    library is in use (with Python's ``lzma`` there is nothing to gain, and uproot keeps its
    own, cramjam's xz 5.2: about as fast as 5.4.1)."""
    if BACKEND == "lzma":
        return False
    import uproot.compression

    cls = uproot.compression._DecompressLZMA
    # uproot's own is kept on its class, not here: a reloaded module would lose track of it
    if ORIGINAL not in cls.__dict__:
        setattr(cls, ORIGINAL, cls.decompress)

    def decompress_lzma(self, data, uncompressed_bytes=None):
        if uncompressed_bytes is None:  # uproot's public API allows it; ROOT blocks have it
            return _decompress(data)
        return decompress(data, uncompressed_bytes)

    cls.decompress = decompress_lzma
    return True


def uninstall() -> None:
    """Give uproot back its own LZMA decompression."""
    import uproot.compression

    cls = uproot.compression._DecompressLZMA
    if ORIGINAL in cls.__dict__:
        cls.decompress = cls.__dict__[ORIGINAL]
        delattr(cls, ORIGINAL)


def blocks(path: str, codec: bytes = b"XZ") -> list[tuple[bytes, int]]:
    """The compressed blocks of every basket in ``path``'s ``Events`` tree, with ROOT's 9-byte
    header: ``(block, uncompressed size)``, the blocks of ``codec`` only (for tests and the
    benchmark below; read at each basket's key, as ROOT stores them)."""
    import uproot

    from analysis_kernels.baskets import stored_payloads

    out = []
    with uproot.open(path) as file, open(path, "rb") as f:
        tree = file["Events"]
        for branch in tree.itervalues(recursive=True):
            for payload, objlen in stored_payloads(f, branch):
                pos = 0
                while len(payload) != objlen and pos < len(payload):  # else stored as is
                    csize = int.from_bytes(payload[pos + 3 : pos + 6], "little")
                    usize = int.from_bytes(payload[pos + 6 : pos + 9], "little")
                    if payload[pos : pos + 2] == codec:
                        out.append((payload[pos : pos + 9 + csize], usize))
                    pos += 9 + csize
    return out


def _root_unzip() -> Callable[[bytes, int], bytes] | None:
    """ROOT's ``R__unzip`` from the PyPI ROOT's ``libCore.so`` via ctypes, for the benchmark
    only (ROOT is never a runtime dependency); None without ROOT."""
    import ctypes
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("ROOT")
    if spec is None or not spec.submodule_search_locations:
        return None
    core = Path(next(iter(spec.submodule_search_locations))) / "lib" / "libCore.so"
    if not core.exists():
        return None
    unzip = ctypes.CDLL(str(core)).R__unzip
    p = ctypes.POINTER(ctypes.c_int)
    unzip.argtypes = [p, ctypes.c_char_p, p, ctypes.c_void_p, p]
    unzip.restype = None

    def r_unzip(block: bytes, size: int) -> bytes:
        out = bytearray(size)
        src, tgt, irep = ctypes.c_int(len(block)), ctypes.c_int(size), ctypes.c_int(0)
        target = (ctypes.c_char * size).from_buffer(out)
        unzip(ctypes.byref(src), block, ctypes.byref(tgt), target, ctypes.byref(irep))
        if irep.value != size:
            raise XZError(f"R__unzip returned {irep.value} bytes, expected {size}")
        return bytes(out)

    return r_unzip


def _bench(path: str, rounds: int = 9) -> None:
    """Python's lzma, this module and ROOT's R__unzip on the same blocks, interleaved in one
    process; run it pinned: ``taskset -c 1 python -m analysis_kernels.xz FILE.root``."""
    import statistics
    import time

    found = blocks(path)
    if not found:
        sys.exit(f"{path}: no XZ blocks")
    payloads = [(b[9:], n) for b, n in found]
    systems = {
        f"Python lzma (liblzma {_stdlib_version()})": lambda: [
            lzma.decompress(b) for b, _ in payloads
        ],
        f"analysis_kernels.xz: {backend()}": lambda: [decompress(b, n) for b, n in payloads],
    }
    r_unzip = _root_unzip()
    if r_unzip is not None:
        systems["ROOT R__unzip (builtin liblzma)"] = lambda: [r_unzip(b, n) for b, n in found]
    reference = [lzma.decompress(b) for b, _ in payloads]
    for name, run in systems.items():
        if run() != reference:
            sys.exit(f"{name}: output differs from lzma.decompress")
    times = {name: [] for name in systems}
    for _ in range(rounds):
        for name, run in systems.items():
            start = time.process_time()
            run()
            times[name].append(time.process_time() - start)
    compressed = sum(len(b) for b, _ in payloads)
    size = sum(n for _, n in payloads)
    print(f"{path}: {len(payloads)} XZ blocks, {compressed / 1e6:.2f} MB -> {size / 1e6:.2f} MB")
    print(f"process CPU time, {rounds} interleaved rounds; ratio = median of per-round ratios")
    last = list(systems)[-1]
    for name, ts in times.items():
        median = statistics.median(ts)
        ratio = statistics.median(t / r for t, r in zip(ts, times[last], strict=True))
        print(
            f"  {name:42s} {median:.3f} s ({min(ts):.3f}-{max(ts):.3f})"
            f"  {size / median / 1e6:6.1f} MB/s  time / {last.split(' (')[0]}: {ratio:.2f}"
        )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m analysis_kernels.xz FILE.root [ROUNDS]")
    _bench(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 9)
