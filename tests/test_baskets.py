"""The lean basket reader (analysis_kernels.baskets) gives uproot's arrays, bit for bit, and
names the file, branch and range of a damaged basket."""

from __future__ import annotations

import shutil

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis_kernels import baskets
from analysis_kernels.errors import InputError
from analysis_kernels.generate import BASKET_EVENTS, DatasetSpec, generate_dataset
from analysis_kernels.schema import basket_bytes, open_tree, read_chunk, tree_types

EVENTS = BASKET_EVENTS + 10_000  # two baskets per branch: ranges can cross a border
RANGES = [
    (0, EVENTS),
    (1, EVENTS - 1),
    (BASKET_EVENTS - 3, BASKET_EVENTS + 2),
    (BASKET_EVENTS, EVENTS),
    (123, 124),
    (17, 40_000),
]


def same(ours: ak.Array, theirs: ak.Array) -> None:
    """Same form, same length, same buffers byte for byte (NaNs included)."""
    assert ours.layout.form == theirs.layout.form
    assert len(ours) == len(theirs)
    form1, n1, buffers1 = ak.to_buffers(ours)
    form2, n2, buffers2 = ak.to_buffers(theirs)
    assert (form1, n1) == (form2, n2)
    assert buffers1.keys() == buffers2.keys()
    for key in buffers1:
        a, b = np.asarray(buffers1[key]), np.asarray(buffers2[key])
        assert a.dtype == b.dtype, key
        assert a.tobytes() == b.tobytes(), key


def uproot_arrays(path, declared, start, stop):
    with uproot.open(path) as f:
        return f["Events"].arrays(list(declared), entry_start=start, entry_stop=stop, library="ak")


@pytest.fixture(scope="module")
def codec_files(tmp_path_factory) -> dict[str, str]:
    """One generated Ds file per codec, and two with many small baskets, written uncompressed
    and with ZSTD (ranges that start and end inside baskets and span several whole ones)."""
    root = tmp_path_factory.mktemp("codecs")
    out = {}
    for codec in ("ZSTD", "LZ4", "LZMA", "ZLIB"):
        generate_dataset(
            DatasetSpec("ds", files=1, events_per_file=EVENTS, codec=codec, seed=5),
            root / codec,
            progress=False,
        )
        (out[codec],) = (str(p) for p in (root / codec).glob("*.root"))
    for name, compression in (("uncompressed", None), ("ZSTD-small", uproot.ZSTD(1))):
        out[name] = _small_baskets(root / f"{name}.root", compression)
    return out


def _small_baskets(path, compression) -> str:
    """Seven baskets of 900-1500 entries per branch: empty lists, bool, uint64, int32, float32."""
    rng = np.random.default_rng(3)
    with uproot.recreate(path, compression=compression) as f:
        for b in range(7):
            n = 900 + 100 * b
            counts = rng.poisson(1.5, n).astype(np.int32)
            flat = int(counts.sum())
            batch = {
                "event": np.arange(b * 10_000, b * 10_000 + n, dtype=np.uint64),
                "MET_pt": rng.random(n, dtype=np.float32),
                "Muon": ak.zip(
                    {
                        "Muon_pt": ak.unflatten(rng.random(flat, dtype=np.float32), counts),
                        "Muon_charge": ak.unflatten(rng.integers(-1, 2, flat, np.int32), counts),
                        "Muon_isGlobal": ak.unflatten(rng.random(flat) > 0.5, counts),
                    }
                ),
            }
            if b == 0:
                tree = f.mktree(
                    "Events",
                    {k: v.type if k == "Muon" else v.dtype for k, v in batch.items()},
                    field_name=lambda _outer, inner: inner,
                    counter_name=lambda counted: "n" + counted,
                )
            tree.extend(batch)
    return str(path)


@pytest.mark.parametrize("codec", ["ZSTD", "LZ4", "LZMA", "ZLIB", "uncompressed", "ZSTD-small"])
def test_same_arrays_as_uproot(codec_files, codec):
    path = codec_files[codec]
    tree = open_tree(path)
    declared = tree_types(tree)
    reader = baskets.reader(tree, path)
    assert reader is not None
    assert all(reader.layout(name) is not None for name in declared), "read by the lean path"
    if codec == "ZSTD-small":  # decompressed where the arrays go, not copied from the file
        for name in ("Muon_pt", "Muon_charge", "Muon_isGlobal", "event"):
            lay = reader.layout(name)
            assert not any(reader._header(lay, i)[1] for i in range(len(lay.seeks))), name
    n = tree.num_entries
    small = [(n // 3, n // 3 + 1001), (950, n - 17), (0, 1900), (1, 2)]
    for start, stop in [*RANGES, *small] if codec in ("uncompressed", "ZSTD-small") else RANGES:
        start, stop = min(start, n - 1), min(stop, n)
        events, nbytes = read_chunk(path, declared, start, stop)
        same(events, uproot_arrays(path, declared, start, stop))
        assert nbytes == sum(basket_bytes(tree[b], start, stop) for b in declared)


def test_declared_subset_and_order(codec_files):
    path = codec_files["ZSTD"]
    declared = {"nTrack": "int32", "Track_pt": "var * float32", "event": "uint64"}
    events, _ = read_chunk(path, declared, 1000, 51_000)
    assert events.fields == list(declared)
    same(events, uproot_arrays(path, declared, 1000, 51_000))


def test_real_cms_file_goes_through_uproot(real_nanoaod):
    """Its baskets are embedded in the TTree metadata (a ROOT-recovered file): uproot reads
    them, and the result is uproot's."""
    path = str(real_nanoaod)
    tree = open_tree(path)
    declared = {
        name: kind
        for name, kind in tree_types(tree).items()
        if kind.replace("var * ", "") in {"float32", "int32", "uint32", "bool", "uint64"}
    }
    reader = baskets.reader(tree, path)
    assert not any(reader.layout(name) for name in declared)
    for start, stop in [(0, tree.num_entries), (50, 150), (7, 8)]:
        events, _ = read_chunk(path, declared, start, stop)
        same(events, uproot_arrays(path, declared, start, stop))


def _basket_at(path: str, branch: str, index: int = 0) -> tuple[int, int, int]:
    """(seek, key length, bytes) of one basket."""
    b = open_tree(path)[branch]
    seek = int(b.member("fBasketSeek")[index])
    with open(path, "rb") as f:
        f.seek(seek)
        head = f.read(18)
    return seek, int.from_bytes(head[14:16], "big"), int(b.member("fBasketBytes")[index])


def _damaged(src: str, dst, at: int, flip: bytes) -> str:
    shutil.copy(src, dst)
    with open(dst, "r+b") as f:
        f.seek(at)
        old = f.read(len(flip))
        f.seek(at)
        f.write(bytes(a ^ b for a, b in zip(old, flip, strict=True)))
    return str(dst)


@pytest.mark.parametrize(
    ("codec", "branch", "where"),
    [
        ("ZSTD", "Track_pt", 9),  # the zstd frame's magic, after ROOT's 9-byte block header
        ("ZSTD", "Track_pt", 3),  # the block header's compressed size
        ("LZ4", "nTrack", 40),  # inside the block: its checksum does not match
        ("ZLIB", "Track_pt", 200),  # inside the deflate stream
        ("LZMA", "Track_pt", 9),  # the xz stream header
    ],
)
def test_flipped_bytes_name_file_branch_and_range(codec_files, tmp_path, codec, branch, where):
    """An attacker-style damaged basket (LZ4 Track_pt baskets do not compress: ROOT stores
    them as they are, and a flipped byte there is a different value, for uproot as for us)."""
    src = codec_files[codec]
    seek, keylen, _ = _basket_at(src, branch, 1)
    path = _damaged(src, tmp_path / "bad.root", seek + keylen + where, b"\x5a\xa5")
    declared = {"nTrack": "int32", "Track_pt": "var * float32"}
    read_chunk(path, declared, 0, 1000)  # basket 0 is intact
    with pytest.raises(InputError) as err:
        read_chunk(path, declared, BASKET_EVENTS - 10, BASKET_EVENTS + 10)
    assert err.value.file == path
    assert (err.value.entry_start, err.value.entry_stop) == (BASKET_EVENTS - 10, BASKET_EVENTS + 10)
    assert f"'{branch}'" in str(err.value) and path in str(err.value)


def test_damaged_key_and_offsets(codec_files, tmp_path):
    src = codec_files["uncompressed"]
    seek, _, nbytes = _basket_at(src, "Muon_pt", 2)
    declared = {"nMuon": "int32", "Muon_pt": "var * float32"}
    start, stop = open_tree(src)["Muon_pt"].basket_entry_start_stop(2)
    bad_key = _damaged(src, tmp_path / "key.root", seek + 2, b"\x01")  # fNbytes
    with pytest.raises(InputError, match=r"Muon_pt.*key that does not match"):
        read_chunk(bad_key, declared, start, start + 5)
    # An uncompressed basket has no checksum: entry offsets out of order are caught.
    bad_offsets = _damaged(src, tmp_path / "offsets.root", seek + nbytes - 12, b"\x40\x00")
    with pytest.raises(InputError, match=r"Muon_pt.*entry offsets"):
        read_chunk(bad_offsets, declared, start, stop)


@pytest.mark.parametrize("codec", ["ZSTD", "ZSTD-small"])
@pytest.mark.parametrize(
    ("where", "flip"),
    [
        (3, b"\x01"),  # an entry offset one byte off: not aligned to float32
        (2, b"\x40"),  # an entry offset past the next one: out of order
        (-6, b"\x7f"),  # the last stored offset moved (past the border or back)
        (0, b"\x80"),  # an entry offset made negative
    ],
)
def test_damaged_offsets_of_compressed_baskets(codec_files, monkeypatch, codec, where, flip):
    """Entry offsets are checked where a basket is decompressed into the chunk's arrays: a
    block that decompresses to wrong offsets (a codec without a checksum) is refused by
    name, whichever entry the range starts at."""
    path = codec_files[codec]
    declared = {"nMuon" if codec == "ZSTD-small" else "nTrack": "int32"}
    branch = "Muon_pt" if codec == "ZSTD-small" else "Track_pt"
    declared[branch] = "var * float32"
    tree = open_tree(path)
    lay = baskets.reader(tree, path).layout(branch)
    start, stop = lay.entries[1], lay.entries[2]
    real = baskets.decompress

    def damaged(payload, out):
        real(payload, out)
        if len(out) == objlen:
            border = objlen - 4 * (nevbuf + 2)
            at = border + 4 + 4 * (nevbuf // 2) + where if where >= 0 else len(out) + where
            out[at] ^= flip[0]

    _, _, objlen, _, _, nevbuf = baskets.reader(tree, path)._header(lay, 1)
    monkeypatch.setattr(baskets, "decompress", damaged)
    for first, last in [(start, stop), (start + 1, stop), (start, stop - 1)]:
        with pytest.raises(InputError, match=rf"'{branch}'.*entry offsets out of order") as err:
            read_chunk(path, declared, first, last)
        assert err.value.file == path and err.value.entry_start == first


def test_entry_offsets_kernel():
    """The compiled check and conversion of one basket's offsets, against numpy."""
    rng = np.random.default_rng(1)
    keylen, n = 77, 500
    sizes = rng.poisson(1.5, n) * 4
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    border = int(offsets[-1])
    words = (offsets[:-1] + keylen).astype(">i4").view(np.uint32)
    for lo, hi in [(0, n), (3, n), (0, 7), (10, 11), (n - 1, n)]:
        out = np.full(hi - lo, -1, np.int64)
        first = baskets._entry_offsets(words, keylen, border, lo, hi, 2, 1000, out)
        assert first == offsets[lo]
        assert (out == 1000 + (offsets[lo + 1 : hi + 1] - offsets[lo]) // 4).all()
    for bad in (offsets + 1, offsets[::-1], offsets - 4, offsets * 2):
        words = (bad[:-1] + keylen).astype(">i4").view(np.uint32)
        out = np.empty(n, np.int64)
        assert baskets._entry_offsets(words, keylen, border, 0, n, 2, 0, out) == -1


def test_truncated_file_names_file_and_branch(codec_files, tmp_path):
    """uproot writes the tree's metadata before the baskets: a file cut in half still opens,
    its first baskets read, and a basket past the cut is refused by name."""
    src = codec_files["ZSTD"]
    path = tmp_path / "cut.root"
    with open(src, "rb") as f:
        data = f.read()
    path.write_bytes(data[: len(data) // 2])
    declared = {"nTrack": "int32", "Track_pt": "var * float32"}
    with pytest.raises(InputError) as err:
        read_chunk(str(path), declared, 0, EVENTS)
    assert err.value.file == str(path)
    assert (err.value.entry_start, err.value.entry_stop) == (0, EVENTS)
    assert "past the end of the file" in str(err.value)
    assert "'nTrack'" in str(err.value) or "'Track_pt'" in str(err.value)
    cut = tmp_path / "header.root"
    cut.write_bytes(data[:300])
    with pytest.raises(InputError) as err:
        read_chunk(str(cut), declared, 0, 10)
    assert err.value.file == str(cut)


def test_remote_paths_have_no_lean_reader(codec_files):
    tree = open_tree(codec_files["ZSTD"])
    assert baskets.reader(tree, "root://host//store/file.root") is None
    assert baskets.reader(tree, "https://host/file.root") is None


def test_chunks_held_at_once_stay_intact(codec_files):
    """The arrays of a chunk share one buffer, reused for the next chunk only once nothing
    refers to it: a chunk kept while the next is read is unchanged."""
    path = codec_files["ZSTD"]
    declared = {"nTrack": "int32", "Track_pt": "var * float32", "event": "uint64"}
    kept, _ = read_chunk(path, declared, 0, 30_000)
    for start in (30_000, 0, 10_000):
        read_chunk(path, declared, start, start + 30_000)
    same(kept, uproot_arrays(path, declared, 0, 30_000))
    column = kept["Track_pt"]
    del kept
    read_chunk(path, declared, 5, 30_005)
    same(column, uproot_arrays(path, declared, 0, 30_000)["Track_pt"])
