"""A lean reader of numeric branches: baskets straight from a local file into awkward arrays.

uproot reads a chunk basket by basket through Python objects (a ``TBasket`` model, a cursor,
an interpretation, cramjam for the codec); for the flat and jagged numeric branches of
NanoAOD that bookkeeping costs as much as the decompression itself. This module does the
same work with less: the basket positions come from uproot's branch metadata
(``fBasketSeek``, ``fBasketBytes``, ``fBasketEntry``), each basket's TKey and TBasket header
is parsed with :mod:`struct`, its compressed blocks (ROOT's 9-byte block headers) are
decompressed with the fastest binding at hand (zstandard, cramjam's LZ4, zlib, and xz 5.8
through :mod:`analysis_kernels.xz`), and the big-endian payload is sliced to the entry range and converted to native order by numpy,
straight into the arrays of the result.

The result is the ``ak.Array`` that ``tree.arrays(branches, entry_start, entry_stop,
library="ak")`` gives: same form, same values, same lengths (tests/test_baskets.py).

What it does not read goes through uproot, decided per branch: other interpretations,
branches with baskets embedded in the TTree metadata (files recovered by ROOT, like the CMS
Open Data sample), jagged baskets without entry offsets, remote files. A basket that is
damaged (a header that does not match the metadata, a block that does not decompress to its
declared size, entry offsets out of order) raises :class:`InputError` naming the file, the
branch and the entry range; it is never read as something else.
"""

from __future__ import annotations

import mmap
import struct
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import awkward as ak
import cramjam
import numpy as np
import uproot
import xxhash
import zstandard

from analysis_kernels import xz
from analysis_kernels.errors import InputError

# TKey: fNbytes, fVersion, fObjlen, fDatime, fKeylen, fCycle (uproot's _tbasket_format1).
_KEY = struct.Struct(">ihiIhh")
# The TBasket's own fields end the key: fVersion, fBufferSize, fNevBufSize, fNevBuf, fLast,
# then one flag byte (uproot's _tbasket_format2, read at fKeylen - 19).
_BASKET = struct.Struct(">Hiiii")
_BASKET_AT = _BASKET.size + 1
_BLOCK_HEADER = 9  # algorithm (2 bytes), method, compressed and uncompressed size (3 bytes LE)
_LZ4_CHECKSUM = 8  # xxhash64 of the block, big-endian, before an LZ4 block


class Unsupported(Exception):
    """This branch (or this basket of it) is read through uproot instead."""


class Damaged(Exception):
    """A basket that cannot be what its metadata says."""


# ---------------------------------------------------------------------------------------------
# Decompression: one function per codec, the fastest binding installed, each writing a block
# into a buffer that is reused from chunk to chunk (a fresh output per block costs page
# faults that were a third of the decompression time, measured in benchmarks/read_path.py).

_local = threading.local()


def decompress_lzma(block, out: np.ndarray) -> int:
    """LZMA (xz) block into ``out``, with xz 5.8 where its wheel is installed: as fast as
    ROOT's own, 1.6x Python's liblzma 5.4 (:mod:`analysis_kernels.xz`)."""
    data = xz.decompress(bytes(block), len(out))
    out[:] = np.frombuffer(data, np.uint8)
    return len(data)


def decompress_zlib(block, out: np.ndarray) -> int:
    return cramjam.zlib.decompress_into(block, out)


def decompress_zstd(block, out: np.ndarray) -> int:
    # zstandard's decoder: 10-15% faster than cramjam's on these baskets.
    try:
        zstd = _local.zstd
    except AttributeError:  # a decompression context per thread (they are not shareable)
        zstd = _local.zstd = zstandard.ZstdDecompressor()
    reader = zstd.stream_reader(block)
    n = reader.readinto(out)
    while 0 < n < len(out):
        more = reader.readinto(out[n:])
        if more == 0:
            break
        n += more
    if reader.read(1):  # more than the header said
        return n + 1
    return n


def decompress_lz4(block, out: np.ndarray) -> int:
    checksum = int.from_bytes(block[:_LZ4_CHECKSUM], "big")
    payload = block[_LZ4_CHECKSUM:]
    if xxhash.xxh64_intdigest(payload) != checksum:
        raise Damaged("LZ4 block checksum does not match")
    return cramjam.lz4.decompress_block_into(payload, out)


DECOMPRESSORS = {
    b"ZS": decompress_zstd,
    b"L4": decompress_lz4,
    b"ZL": decompress_zlib,
    b"XZ": decompress_lzma,
}


def decompress(payload: memoryview, out: np.ndarray) -> None:
    """A ROOT compressed payload (one or more blocks) into ``out``, which it must fill."""
    pos, filled, end = 0, 0, len(payload)
    while pos < end:
        if pos + _BLOCK_HEADER > end:
            raise Damaged(f"a compression block header is cut at byte {pos}")
        head = bytes(payload[pos : pos + _BLOCK_HEADER])
        algo = head[:2]
        csize = head[3] | head[4] << 8 | head[5] << 16
        usize = head[6] | head[7] << 8 | head[8] << 16
        block = payload[pos + _BLOCK_HEADER : pos + _BLOCK_HEADER + csize]
        if len(block) != csize:
            raise Damaged(f"a compression block of {csize} bytes is cut at byte {pos}")
        if filled + usize > len(out):
            raise Damaged(f"the blocks decompress to more than the {len(out)} bytes of its key")
        codec = DECOMPRESSORS.get(algo)
        if codec is None:
            raise Damaged(f"unknown compression algorithm {algo!r}")
        try:
            n = codec(block, out[filled : filled + usize])
        except Damaged:
            raise
        except Exception as err:
            raise Damaged(
                f"{algo.decode(errors='replace')} block does not decompress ({err})"
            ) from err
        if n != usize:
            raise Damaged(f"a block decompressed to {n} bytes, its header says {usize}")
        filled += usize
        pos += _BLOCK_HEADER + csize
    if filled != len(out):
        raise Damaged(f"the basket decompressed to {filled} bytes, its key says {len(out)}")


MAX_SCRATCH = 64 << 20  # a larger basket gets a buffer of its own


def scratch(k: int, size: int) -> np.ndarray:
    """The ``k``-th reusable buffer of this thread, ``size`` bytes long."""
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = []
    if size > MAX_SCRATCH:
        return np.empty(size, np.uint8)
    while len(pool) <= k:
        pool.append(np.empty(0, np.uint8))
    if len(pool[k]) < size:
        pool[k] = np.empty(max(size, len(pool[k]) * 5 // 4), np.uint8)
    return pool[k][:size]


# ---------------------------------------------------------------------------------------------
# Branch layouts, taken once per open tree.


@dataclass(frozen=True, slots=True)
class Layout:
    """Where one branch's baskets are and what they hold."""

    name: str
    jagged: bool
    source: np.dtype  # as stored (big-endian)
    target: np.dtype  # as uproot returns it (native)
    seeks: list[int]
    nbytes: list[int]
    entries: list[int]  # basket i holds entries [entries[i], entries[i + 1])


def layout(branch) -> Layout:
    """The basket layout of a branch this reader can read, or :class:`Unsupported`."""
    interp = branch.interpretation
    jagged = isinstance(interp, uproot.interpretation.jagged.AsJagged)
    if jagged:
        if interp.header_bytes != 0:
            raise Unsupported("jagged with headers")
        interp = interp.content
    if type(interp) is not uproot.interpretation.numerical.AsDtype:
        raise Unsupported(type(interp).__name__)
    source, target = np.dtype(interp.from_dtype), np.dtype(interp.to_dtype)
    if source.shape != () or source.fields is not None or source.kind not in "biuf":
        raise Unsupported(f"dtype {source}")
    if target != source.newbyteorder("="):
        raise Unsupported(f"{source} read as {target}")
    if branch.embedded_baskets:
        raise Unsupported("baskets embedded in the TTree metadata")
    n = branch.num_baskets
    seeks = [int(s) for s in branch.member("fBasketSeek")[:n]]
    nbytes = [int(b) for b in branch.member("fBasketBytes")[:n]]
    entries = [int(e) for e in branch.entry_offsets]
    if len(entries) != n + 1 or min(seeks, default=1) <= 0:
        raise Unsupported("basket metadata this reader does not know")
    return Layout(branch.name, jagged, source, target, seeks, nbytes, entries)


class TreeReader:
    """The lean reader of one open tree of a local file."""

    def __init__(self, tree, path: str):
        self.tree = tree
        self.path = path
        with open(path, "rb") as f:
            self.map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.view = memoryview(self.map)
        self.layouts: dict[str, Layout | None] = {}
        self.checked: set[tuple] = set()  # declared (name, type) sets already checked

    def layout(self, name: str) -> Layout | None:
        """The branch's layout, or None: it is read through uproot."""
        try:
            return self.layouts[name]
        except KeyError:
            try:
                found = layout(self.tree[name])
            except Unsupported:
                found = None
            self.layouts[name] = found
            return found

    def compressed_bytes(self, name: str, entry_start: int, entry_stop: int) -> int | None:
        """Bytes on storage of the baskets overlapping the range (None: not known here)."""
        lay = self.layout(name)
        if lay is None:
            return None
        e = lay.entries
        return sum(
            nb for i, nb in enumerate(lay.nbytes) if e[i] < entry_stop and e[i + 1] > entry_start
        )

    def read(self, names: Sequence[str], entry_start: int, entry_stop: int) -> ak.Array:
        """The branches of one entry range as uproot's ``tree.arrays`` gives them.

        Two passes: every basket of the range is decompressed (into this thread's reusable
        buffers) and checked first; then the arrays of all branches are filled as views of one
        buffer allocated for the chunk. One allocation instead of two or three per branch:
        fresh pages cost page faults, about 15 ms per 18 MB chunk here, as much as half the
        decompression, where one large block is recycled by the allocator from chunk to chunk.
        """
        plans: dict[str, tuple] = {}
        through_uproot = []
        if 0 <= entry_start < entry_stop <= self.tree.num_entries:
            k = 0  # the next scratch buffer
            for name in names:
                lay = self.layout(name)
                if lay is None:
                    through_uproot.append(name)
                    continue
                try:
                    plans[name], k = self._prepare(lay, entry_start, entry_stop, k)
                except Unsupported:
                    through_uproot.append(name)
                except Exception as err:
                    why = str(err) if isinstance(err, Damaged) else f"{type(err).__name__}: {err}"
                    raise InputError(
                        f"cannot read or decompress branch {name!r}: damaged basket ({why})",
                        file=self.path,
                        entry_start=entry_start,
                        entry_stop=entry_stop,
                    ) from err
        else:
            through_uproot = list(names)
        contents: dict[str, ak.contents.Content] = {}
        if plans:
            arena = _arena(sum(plan[0] for plan in plans.values()))
            at = 0
            for name, plan in plans.items():
                contents[name] = self._fill(plan, arena[at : at + plan[0]])
                at += plan[0]
        if through_uproot:
            from analysis_kernels.schema import read_arrays

            others = read_arrays(
                self.tree, self.path, entry_start, entry_stop, through_uproot, library="ak"
            )
            if not contents:
                return others
            for name in through_uproot:
                contents[name] = others[name].layout
        length = entry_stop - entry_start
        return ak.Array(
            ak.contents.RecordArray([contents[n] for n in names], list(names), length=length)
        )

    # -- one branch ----------------------------------------------------------------------------

    def _basket(self, lay: Layout, i: int, k: int):
        """(data, byte offsets or None) of basket ``i``: the uncompressed content before the
        border and, for a jagged branch, the entry offsets after it (relative to the data)."""
        seek, nbytes = lay.seeks[i], lay.nbytes[i]
        view = self.view
        if seek + nbytes > len(view):
            raise Damaged(f"basket {i} at byte {seek} runs past the end of the file")
        fnbytes, _version, objlen, _datime, keylen, _cycle = _KEY.unpack_from(view, seek)
        if fnbytes != nbytes or not _KEY.size + _BASKET_AT <= keylen <= nbytes or objlen < 0:
            raise Damaged(f"basket {i} at byte {seek} has a key that does not match its branch")
        _bversion, _bufsize, _entrysize, nevbuf, last = _BASKET.unpack_from(
            view, seek + keylen - _BASKET_AT
        )
        border = last - keylen
        if nevbuf != lay.entries[i + 1] - lay.entries[i] or not 0 <= border <= objlen:
            raise Damaged(f"basket {i} at byte {seek} has a header that does not match")
        payload = view[seek + keylen : seek + nbytes]
        if nbytes - keylen == objlen:  # stored uncompressed
            raw = np.frombuffer(payload, np.uint8)
        else:
            raw = scratch(k, objlen)
            decompress(payload, raw)
        if border == objlen:
            if lay.jagged:  # offsets from the counter: uproot knows how
                raise Unsupported("jagged basket without entry offsets")
            return raw, None
        if not lay.jagged or objlen - border < 4 * (nevbuf + 2):
            raise Damaged(f"basket {i} has entry offsets that do not fit")
        offsets = raw[border : border + 4 * (nevbuf + 2)].view(">i4")[1:] - np.int32(keylen)
        offsets[-1] = border
        return raw[:border], offsets

    def _prepare(self, lay: Layout, entry_start: int, entry_stop: int, k: int):
        """Decompress and check the baskets of one branch that overlap the range.

        Returns the plan of its arrays (bytes they need first) and the next scratch index.
        """
        e = lay.entries
        if e[0] != 0 or e[-1] < entry_stop:  # not the tree's entries: uproot decides
            raise Unsupported("the branch's baskets do not cover the range")
        i = next(i for i in range(len(e) - 1) if e[i + 1] > entry_start)
        pieces = []
        while i < len(e) - 1 and e[i] < entry_stop:
            lo, hi = max(entry_start, e[i]) - e[i], min(entry_stop, e[i + 1]) - e[i]
            data, byte_offsets = self._basket(lay, i, k)
            pieces.append((data, byte_offsets, lo, hi, e[i + 1] - e[i]))
            i += 1
            k += 1
        length = entry_stop - entry_start
        item = lay.source.itemsize
        if not lay.jagged:
            for data, _, _, _, n in pieces:
                if len(data) != n * item:
                    raise Damaged(f"a basket holds {len(data)} bytes for {n} entries of {item}")
            return (_aligned(length * item), lay, length, pieces, 0), k
        total = 0
        mask = item - 1  # numeric items are 1, 2, 4 or 8 bytes
        for data, byte_offsets, lo, hi, _ in pieces:
            part = byte_offsets[lo : hi + 1]
            first, last = int(part[0]), int(part[-1])
            if (
                first < 0
                or last > len(data)
                or not np.greater_equal(part[1:], part[:-1]).all()
                or np.bitwise_and(part, mask).any()
            ):
                raise Damaged("entry offsets out of order")
            total += (last - first) // item
        nbytes = _aligned(8 * (length + 1)) + _aligned(total * item)
        return (nbytes, lay, length, pieces, total), k

    @staticmethod
    def _fill(plan, buffer: np.ndarray) -> ak.contents.Content:
        """The arrays of one branch, written into ``buffer``."""
        _, lay, length, pieces, total = plan
        item = lay.source.itemsize
        if not lay.jagged:
            out = buffer[: length * item].view(lay.target)
            at = 0
            for data, _, lo, hi, _ in pieces:
                out[at : at + hi - lo] = data[lo * item : hi * item].view(lay.source)
                at += hi - lo
            return ak.contents.NumpyArray(out)
        head = _aligned(8 * (length + 1))
        offsets = buffer[: 8 * (length + 1)].view(np.int64)
        content = buffer[head : head + total * item].view(lay.target)
        offsets[0] = 0
        shift = item.bit_length() - 1
        at, filled = 0, 0
        for data, byte_offsets, lo, hi, _ in pieces:
            part = byte_offsets[lo : hi + 1]
            first, last = int(part[0]), int(part[-1])
            np.add(
                np.right_shift(part[1:], shift),
                np.int64(filled - (first >> shift)),
                out=offsets[at + 1 : at + hi - lo + 1],
            )
            n = (last - first) >> shift
            content[filled : filled + n] = data[first:last].view(lay.source)
            filled += n
            at += hi - lo
        return ak.contents.ListOffsetArray(
            ak.index.Index64(offsets), ak.contents.NumpyArray(content)
        )


MAX_ARENA = 512 << 20  # a larger chunk's arrays get a buffer that is not kept


def _arena(size: int) -> np.ndarray:
    """A buffer for the arrays of one chunk: this thread's previous one when nothing refers
    to it any more (every array of a chunk is a view holding its buffer, so a buffer that
    only this pool refers to is free), else a new one, which the pool then keeps.

    Chunks larger than the allocator's mmap threshold (32 MiB at most in glibc) otherwise
    come back as fresh pages at every chunk, and page faults cost as much as the
    decompression (400k-entry chunks of ADL Q6: a fifth of the rate of 100k-entry ones).
    """
    kept = getattr(_local, "arena", None)
    if kept is not None and len(kept) >= size and sys.getrefcount(kept) == _FREE_REFS:
        return kept[:size]
    del kept
    made = np.empty(size, np.uint8)
    if size <= MAX_ARENA:
        _local.arena = made
    return made


def _free_refs() -> int:
    """References to a kept arena that nothing else holds: the pool's and the call's."""
    _local.arena = np.empty(1, np.uint8)
    kept = _local.arena
    try:
        return sys.getrefcount(kept)
    finally:
        del _local.arena


_FREE_REFS = _free_refs()


def _aligned(nbytes: int) -> int:
    return (nbytes + 7) & ~7


# ---------------------------------------------------------------------------------------------
# Readers of open trees, one per tree object (uproot's trees are per file and thread).

_READERS: OrderedDict[int, TreeReader] = OrderedDict()
_LOCK = threading.Lock()
MAX_READERS = 64


def reader(tree, path: str) -> TreeReader | None:
    """The lean reader of an open tree, or None where uproot reads everything (remote files,
    paths that are URLs)."""
    if "://" in path:
        return None
    key = id(tree)
    with _LOCK:
        found = _READERS.get(key)
        if found is not None and found.tree is tree:
            _READERS.move_to_end(key)
            return found
    try:
        made = TreeReader(tree, path)
    except (OSError, ValueError):  # not a plain local file: uproot reads it
        return None
    with _LOCK:
        _READERS[key] = made
        while len(_READERS) > MAX_READERS:
            _READERS.popitem(last=False)
    return made


def stored_payloads(file, branch) -> Iterator[tuple[bytes, int]]:
    """Each basket of ``branch`` as stored in the open binary ``file`` (read at its key): the
    compressed payload and its uncompressed size, for the raw-decompression benchmark and the
    codec tests (a payload as long as its size is stored uncompressed)."""
    seeks = branch.member("fBasketSeek")
    for i in range(branch.num_baskets):
        file.seek(int(seeks[i]))
        head = file.read(18)
        nbytes = int.from_bytes(head[0:4], "big")
        objlen = int.from_bytes(head[6:10], "big")
        keylen = int.from_bytes(head[14:16], "big")
        file.seek(int(seeks[i]) + keylen)
        yield file.read(nbytes - keylen), objlen
