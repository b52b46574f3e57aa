"""What each system of the throughput table runs, for one analysis on one set of files.

A builder does its setup (imports, opening files, compiling C++ helpers, reading the
compressed payloads of the raw row) outside the timed call and returns the call to time.
Every system reads the same files; ours and the I/O floor also read the same chunks.
"""

from __future__ import annotations

import lzma
from collections.abc import Callable

import cramjam
import numpy as np

from analysis_kernels import baskets, get_analysis, run
from analysis_kernels.baskets import stored_payloads
from analysis_kernels.executor import DEFAULT_CHUNK_SIZE
from analysis_kernels.executor.chunks import plan
from analysis_kernels.schema import open_tree, read_chunk

SYSTEMS = ["ours", "io-floor", "raw", "rdataframe", "coffea"]


def declared(analysis: str, params: dict) -> list[str]:
    spec = get_analysis(analysis)
    return list(spec.branches_for(spec.params(params)))


def ours(analysis: str, files: list[str], params: dict, chunk_size: int) -> Callable:
    return lambda: run(analysis, files, params=params, chunk_size=chunk_size)


def io_floor(analysis: str, files: list[str], params: dict, chunk_size: int) -> Callable:
    """Read and decompress the declared branches, in ours' chunks, into awkward arrays, with
    ours' reader (``schema.read_chunk``: the lean basket reader, uproot for the rest)."""
    spec = get_analysis(analysis)
    types = spec.branches_for(spec.params(params))
    chunks, _, _ = plan(files, chunk_size)

    def read():
        for c in chunks:
            read_chunk(c.file, types, c.entry_start, c.entry_stop)

    return read


def io_floor_uproot(
    analysis: str, files: list[str], params: dict, chunk_size: int, open_tree=open_tree
) -> Callable:
    """The I/O floor through uproot's ``tree.arrays`` (memory-mapped local files), the reader
    ours used before the lean one: the read-path study's row for comparison."""
    branches = declared(analysis, params)
    chunks, _, _ = plan(files, chunk_size)

    def read():
        for c in chunks:
            open_tree(c.file).arrays(
                branches, entry_start=c.entry_start, entry_stop=c.entry_stop, library="ak"
            )

    return read


def io_floor_fsspec(analysis: str, files: list[str], params: dict, chunk_size: int) -> Callable:
    """The I/O floor through uproot with its default source for local files (fsspec), for the
    read-path study."""
    import uproot

    trees = {f: uproot.open(f, array_cache=None)["Events"] for f in files}
    return io_floor_uproot(analysis, files, params, chunk_size, trees.__getitem__)


STORED = b"--"  # the algorithm code given to a basket stored uncompressed


def basket_blocks(files: list[str], branches: list[str]) -> list[tuple[bytes, bytes, int]]:
    """The compressed blocks of every basket of the branches: (algorithm, payload, size).

    Read straight from the file at each basket's key (ROOT's 9-byte block headers; LZ4
    blocks carry an 8-byte checksum first), so the raw row times the codec alone. A basket
    ROOT stored uncompressed (where compression did not pay, as for most of LZ4's float
    baskets) is one block of algorithm :data:`STORED`: it costs a copy, which every reader
    pays too, and leaving it out made the raw row skip 80% of Ds's bytes on LZ4.
    """
    blocks = []
    for path in files:
        tree = open_tree(path)
        with open(path, "rb") as f:
            for name in branches:
                for payload, objlen in stored_payloads(f, tree[name]):
                    if len(payload) == objlen:
                        blocks.append((STORED, payload, objlen))
                    else:
                        blocks += _split(payload)
    return blocks


def _split(payload: bytes) -> list[tuple[bytes, bytes, int]]:
    out, pos = [], 0
    while pos < len(payload):
        algo = payload[pos : pos + 2]
        csize = int.from_bytes(payload[pos + 3 : pos + 6], "little")
        usize = int.from_bytes(payload[pos + 6 : pos + 9], "little")
        start = pos + 9 + (8 if algo == b"L4" else 0)
        out.append((algo, payload[start : pos + 9 + csize], usize))
        pos += 9 + csize
    return out


Decompress = Callable[[bytes, np.ndarray], object]


def _copy(data: bytes, out: np.ndarray) -> None:
    np.copyto(out, np.frombuffer(data, np.uint8))


def _python_lzma(data: bytes, out: np.ndarray) -> None:
    _copy(lzma.decompress(data), out)


def decompressors(library: str) -> dict[bytes, Decompress]:
    """Block decompressors by ROOT algorithm code, each writing a block into the buffer given
    to it: ``cramjam`` (what uproot calls; Python's liblzma for LZMA) or the fastest call of
    the fastest binding the facility has: zstandard, cramjam's LZ4 and zlib, and xz 5.8
    through :mod:`analysis_kernels.xz` (as ROOT's own liblzma). Into a buffer because
    ``lz4.block`` allocates every block afresh, and its page faults doubled DT's time."""
    if library == "cramjam":
        return {
            b"ZS": cramjam.zstd.decompress_into,
            b"L4": cramjam.lz4.decompress_block_into,
            b"XZ": _python_lzma,
            b"ZL": cramjam.zlib.decompress_into,
            STORED: _copy,
        }
    return {
        b"ZS": baskets.decompress_zstd,
        b"L4": cramjam.lz4.decompress_block_into,
        b"XZ": baskets.decompress_lzma,
        b"ZL": cramjam.zlib.decompress_into,
        STORED: _copy,
    }


def raw(
    analysis: str, files: list[str], params: dict, chunk_size: int, library: str = "reference"
) -> Callable:
    """Decompress the baskets of the declared branches with the codec library alone, into
    one reused buffer (as the floor reuses its chunk's), and copy those stored uncompressed."""
    blocks = basket_blocks(files, declared(analysis, params))
    codecs = decompressors(library)
    out = np.empty(max((size for _, _, size in blocks), default=0), np.uint8)

    def decompress():
        for algo, data, size in blocks:
            codecs[algo](data, out[:size])

    return decompress


def rdataframe(analysis: str, files: list[str], params: dict, chunk_size: int) -> Callable:
    from benchmarks.peers import rdf

    rdf.root()  # compile the helpers before timing
    if analysis.startswith("adl_"):
        return lambda: rdf.adl(analysis.split("_")[1], files)
    if analysis == "stop":
        return lambda: rdf.stop(files, params["n_variations"])
    return lambda: getattr(rdf, analysis)(files)


def coffea(analysis: str, files: list[str], params: dict, chunk_size: int) -> Callable:
    from benchmarks.peers import coffea_adl

    return lambda: coffea_adl.adl(analysis.split("_")[1], files)


BUILDERS = {
    "ours": ours,
    "io-floor": io_floor,
    "io-floor-uproot": io_floor_uproot,
    "io-floor-fsspec": io_floor_fsspec,
    "raw": raw,
    "raw-cramjam": lambda *args: raw(*args, library="cramjam"),
    "rdataframe": rdataframe,
    "coffea": coffea,
}


def systems_for(analysis: str) -> list[str]:
    """coffea has the ADL queries only (the seed analyses exist in ours and RDataFrame)."""
    return [s for s in SYSTEMS if s != "coffea" or analysis.startswith("adl_")]


def build(system: str, analysis: str, files: list[str], params: dict, chunk_size: int | None):
    return BUILDERS[system](analysis, files, params, chunk_size or DEFAULT_CHUNK_SIZE)
