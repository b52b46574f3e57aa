"""A lean reader of numeric branches: baskets straight from a local file into awkward arrays.

uproot reads a chunk basket by basket through Python objects (a ``TBasket`` model, a cursor,
an interpretation, cramjam for the codec); for the flat and jagged numeric branches of
NanoAOD that bookkeeping costs as much as the decompression itself. This module does the
same work with less: the basket positions come from uproot's branch metadata
(``fBasketSeek``, ``fBasketBytes``, ``fBasketEntry``), each basket's TKey and TBasket header
is parsed with :mod:`struct`, its compressed blocks (ROOT's 9-byte block headers) are
decompressed with the fastest binding at hand (zstandard, cramjam's LZ4, zlib, and xz 5.8
through :mod:`analysis_kernels.xz`) straight into the buffer of the result's arrays, where
the big-endian content is converted to native order in place (while it is in the CPU's
cache) and a jagged branch's entry offsets are checked and converted in one compiled pass.

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

import bisect
import itertools
import mmap
import struct
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import awkward as ak
import cramjam
import numba
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
# into a buffer given to it: the chunk's arrays, or for a basket of which a flat branch reads
# a part, a scratch buffer reused from chunk to chunk (a fresh output per block costs page
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
    if (
        len(entries) != n + 1
        or min(seeks, default=1) <= 0
        or any(a > b for a, b in itertools.pairwise(entries))
    ):
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
        first, stop = _baskets(lay.entries, entry_start, entry_stop)
        return sum(lay.nbytes[first:stop])

    def read(self, names: Sequence[str], entry_start: int, entry_stop: int) -> ak.Array:
        """The branches of one entry range as uproot's ``tree.arrays`` gives them.

        Two passes: the headers of every basket of the range are parsed and checked first,
        which sizes the arrays; then every basket is decompressed straight into the one
        buffer allocated for the chunk, where it becomes its branch's array: converted to
        native order in place while it is still in the CPU's cache, its entry offsets
        checked and converted in one compiled pass. One allocation instead of two or three
        per branch: fresh pages cost page faults, about 15 ms per 18 MB chunk here, as much as
        half the decompression, where one large block is recycled by the allocator from chunk
        to chunk. Decompressing into a scratch buffer and then converting from it into the
        arrays cost a second pass over memory (floor/raw 0.59-0.73 on ADL Q5, Q7, Q8, DT).
        """
        plans: dict[str, tuple] = {}
        through_uproot = []
        if 0 <= entry_start < entry_stop <= self.tree.num_entries:
            for name in names:
                lay = self.layout(name)
                if lay is None:
                    through_uproot.append(name)
                    continue
                try:
                    plans[name] = self._plan(lay, entry_start, entry_stop)
                except Unsupported:
                    through_uproot.append(name)
                except Exception as err:
                    raise self._damaged(name, err, entry_start, entry_stop) from err
        else:
            through_uproot = list(names)
        contents: dict[str, ak.contents.Content] = {}
        if plans:
            arena = _arena(sum(plan[0] for plan in plans.values()))
            at = 0
            for name, plan in plans.items():
                try:
                    contents[name] = self._fill(plan, arena[at : at + plan[0]])
                except Exception as err:
                    raise self._damaged(name, err, entry_start, entry_stop) from err
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

    def _damaged(self, name: str, err: Exception, entry_start: int, entry_stop: int):
        why = str(err) if isinstance(err, Damaged) else f"{type(err).__name__}: {err}"
        return InputError(
            f"cannot read or decompress branch {name!r}: damaged basket ({why})",
            file=self.path,
            entry_start=entry_start,
            entry_stop=entry_stop,
        )

    # -- one branch ----------------------------------------------------------------------------

    def _header(self, lay: Layout, i: int) -> tuple:
        """(payload, stored, objlen, border, keylen, entries) of basket ``i``, checked against
        the branch's metadata: the payload as it is in the file, whether it is stored
        uncompressed, the uncompressed size, where the entry offsets start (the border) and
        the key length the offsets count from."""
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
        if border == objlen:
            if lay.jagged:  # offsets from the counter: uproot knows how
                raise Unsupported("jagged basket without entry offsets")
            if objlen != nevbuf * lay.source.itemsize:
                raise Damaged(
                    f"a basket holds {objlen} bytes for {nevbuf} entries of {lay.source.itemsize}"
                )
        elif not lay.jagged or objlen - border < 4 * (nevbuf + 2):
            raise Damaged(f"basket {i} has entry offsets that do not fit")
        payload = view[seek + keylen : seek + nbytes]
        return payload, nbytes - keylen == objlen, objlen, border, keylen, nevbuf

    def _plan(self, lay: Layout, entry_start: int, entry_stop: int) -> tuple:
        """The baskets of one branch that overlap the range, their headers checked, and the
        bytes its arrays need (with room to decompress a jagged branch's last basket whole,
        entry offsets included, at the end of its content)."""
        e = lay.entries
        if e[0] != 0 or e[-1] < entry_stop:  # not the tree's entries: uproot decides
            raise Unsupported("the branch's baskets do not cover the range")
        i, stop = _baskets(e, entry_start, entry_stop)
        pieces = []
        content, room = 0, 0
        while i < stop:
            lo, hi = max(entry_start, e[i]) - e[i], min(entry_stop, e[i + 1]) - e[i]
            head = self._header(lay, i)
            pieces.append((head, lo, hi))
            # a basket is decompressed where its content goes: at most the content of the
            # baskets before it, and it needs its whole uncompressed size there
            room = max(room, content + head[2])
            content += head[3]
            i += 1
        length = entry_stop - entry_start
        if not lay.jagged:
            return (_aligned(length * lay.source.itemsize), lay, length, pieces)
        return (_aligned(8 * (length + 1)) + _aligned(room), lay, length, pieces)

    @staticmethod
    def _fill(plan, buffer: np.ndarray) -> ak.contents.Content:
        """Decompress the baskets of one branch into ``buffer``, its arrays."""
        _, lay, length, pieces = plan
        item = lay.source.itemsize
        # byte order converted through unsigned integers of the item's size: bit for bit,
        # and numpy's cast between them runs 3-8x faster than ndarray.byteswap in place
        native = np.dtype(f"u{item}")
        stored_as = native.newbyteorder(lay.source.byteorder)
        swap = stored_as != native
        if not lay.jagged:
            out = buffer[: length * item]
            at = 0
            for (payload, stored, objlen, _, _, nevbuf), lo, hi in pieces:
                part = out[at * item : (at + hi - lo) * item]
                if stored:
                    source = np.frombuffer(payload, np.uint8)
                    np.copyto(part.view(native), source[lo * item : hi * item].view(stored_as))
                elif hi - lo == nevbuf:  # the whole basket: decompressed in place
                    decompress(payload, part)
                    if swap:
                        np.copyto(part.view(native), part.view(stored_as))
                else:
                    raw = scratch(0, objlen)
                    decompress(payload, raw)
                    np.copyto(part.view(native), raw[lo * item : hi * item].view(stored_as))
                at += hi - lo
            return ak.contents.NumpyArray(out.view(lay.target))
        head = _aligned(8 * (length + 1))
        offsets = buffer[: 8 * (length + 1)].view(np.int64)
        content = buffer[head:]
        offsets[0] = 0
        shift = item.bit_length() - 1
        at, pos = 0, 0  # entries and content bytes filled
        for (payload, stored, objlen, border, keylen, nevbuf), lo, hi in pieces:
            if stored:
                raw = np.frombuffer(payload, np.uint8)
            else:
                raw = content[pos : pos + objlen]
                decompress(payload, raw)
            words = raw[border + 4 : border + 4 + 4 * nevbuf].view(np.uint32)
            out = offsets[at + 1 : at + 1 + hi - lo]
            first = _entry_offsets(words, keylen, border, lo, hi, shift, pos >> shift, out)
            if first < 0:
                raise Damaged("entry offsets out of order")
            at += hi - lo
            end = int(offsets[at]) << shift
            part = content[pos:end]
            if stored:
                np.copyto(part.view(native), raw[first : first + end - pos].view(stored_as))
            else:
                if first:  # a basket read from the middle: its entries move to the front
                    part[:] = raw[first : first + end - pos]
                if swap:
                    np.copyto(part.view(native), part.view(stored_as))
            pos = end
        return ak.contents.ListOffsetArray(
            ak.index.Index64(offsets), ak.contents.NumpyArray(content[:pos].view(lay.target))
        )


@numba.njit(cache=True, inline="always")
def _native(word):
    """A big-endian int32 read as a native uint32, as an int64."""
    word = (
        (word & np.uint32(0xFF)) << np.uint32(24)
        | (word & np.uint32(0xFF00)) << np.uint32(8)
        | (word >> np.uint32(8)) & np.uint32(0xFF00)
        | word >> np.uint32(24)
    )
    return np.int64(np.int32(word))


@numba.njit(cache=True, nogil=True)
def _entry_offsets(words, keylen, border, lo, hi, shift, base, out):
    """Check and convert the entry offsets ``lo`` to ``hi`` of one basket.

    ``words``: the basket's entry offsets but the last (which is the border), big-endian
    int32 read as native uint32, counted from the key. Writes entries ``lo + 1`` to ``hi``
    into ``out`` as offsets in items of the chunk's content, where this basket's entry ``lo``
    starts at item ``base``. Returns entry ``lo``'s byte offset in the basket's content, or -1
    where the offsets are out of order, not aligned to the item size or outside the
    content. One pass without branches, which the compiler vectorizes: a loop with an early
    exit, or indices that could be negative, ran at half numpy's speed.
    """
    mask = (1 << shift) - 1
    first = _native(words[lo]) - keylen
    shifted = base - (first >> shift)
    bad = (first < 0) | (first & mask != 0)
    stop = min(hi, len(words) - 1)  # the last entry read from ``words``
    stored = words[lo : stop + 1]
    for j in range(stop - lo):
        value = _native(stored[j + 1]) - keylen
        before = _native(stored[j]) - keylen
        bad |= (before > value) | (value & mask != 0)
        out[j] = (value >> shift) + shifted
    last = _native(words[stop]) - keylen
    if hi == len(words):  # the last entry ends at the border
        bad |= (last > border) | (border & mask != 0)
        out[hi - lo - 1] = (border >> shift) + shifted
        last = border
    if bad or last > border:
        return -1
    return first


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


def _baskets(entries: list[int], entry_start: int, entry_stop: int) -> tuple[int, int]:
    """The baskets ``[first, stop)`` that overlap an entry range: basket ``i`` holds entries
    ``[entries[i], entries[i + 1])``, in order (checked by :func:`layout`). By bisection: the
    files of a real dataset hold hundreds of baskets per branch, scanned per branch and chunk.
    """
    first = max(bisect.bisect_right(entries, entry_start) - 1, 0)
    return first, max(min(bisect.bisect_left(entries, entry_stop), len(entries) - 1), first)


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
