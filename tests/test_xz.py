"""analysis_kernels.xz: ROOT's XZ blocks, identical to Python's lzma, with a clean fallback."""

from __future__ import annotations

import importlib
import lzma
import sys
import types

import numpy as np
import pytest
import uproot

from analysis_kernels import xz
from analysis_kernels.generate import DatasetSpec, generate_dataset


@pytest.fixture(scope="module")
def lzma_file(tmp_path_factory) -> str:
    """A generated Ds file written with ROOT's LZMA codec (XZ blocks, as ROOT writes them)."""
    out = tmp_path_factory.mktemp("xz")
    spec = DatasetSpec("ds", files=1, events_per_file=20_000, codec="LZMA", level=5, seed=7)
    generate_dataset(spec, out, workers=1, progress=False)
    return str(out / "ds_0000.root")


@pytest.fixture(scope="module")
def xz_blocks(lzma_file) -> list[tuple[bytes, int]]:
    found = xz.blocks(lzma_file)
    assert len(found) >= 10, "the generated LZMA file should have XZ baskets"
    return found


@pytest.fixture
def patched():
    """A monkeypatch whose changes are undone before analysis_kernels.xz is reloaded as it
    was (a test reloads it with another backend)."""
    with pytest.MonkeyPatch.context() as mp:
        yield mp
    xz.uninstall()
    importlib.reload(xz)


def test_identical_to_python_lzma(xz_blocks):
    for block, size in xz_blocks:
        assert xz.decompress(block[9:], size) == lzma.decompress(block[9:])
    # a numpy view of a file's bytes (what a basket reader hands over) works as well
    block, size = xz_blocks[0]
    assert xz.decompress(np.frombuffer(block, np.uint8)[9:], size) == lzma.decompress(block[9:])


def test_uses_a_new_liblzma():
    """lzma-mt is a dependency of the package: without it the fast path is not under test."""
    import lzma_mt

    assert xz.BACKEND == "lzma_mt"
    assert xz._version_tuple(lzma_mt.get_xz_version()) >= xz.MIN_FAST_VERSION
    assert "lzma_mt (liblzma 5." in xz.backend()


def test_identical_to_root(xz_blocks):
    r_unzip = xz._root_unzip()
    assert r_unzip is not None, "ROOT (the bench extra, which make installs) is missing"
    for block, size in xz_blocks:
        assert xz.decompress(block[9:], size) == r_unzip(block, size)


def test_corrupt_block_raises_a_clear_error(xz_blocks):
    block, size = max(xz_blocks, key=lambda b: len(b[0]))
    payload = bytearray(block[9:])
    middle = len(payload) // 2
    payload[middle : middle + 16] = bytes(16)
    with pytest.raises(xz.XZError, match="corrupt ROOT XZ block"):
        xz.decompress(bytes(payload), size)
    with pytest.raises(xz.XZError, match="corrupt ROOT XZ block"):
        xz.decompress(block[9 : len(block) // 2], size)  # truncated
    with pytest.raises(xz.XZError, match="its header says"):
        xz.decompress(block[9:], size + 1)
    # callers that catch lzma's or uproot's usual errors still catch it
    assert issubclass(xz.XZError, lzma.LZMAError) and issubclass(xz.XZError, ValueError)


def test_fallback_without_the_fast_library(patched, xz_blocks):
    patched.setitem(sys.modules, "lzma_mt", None)  # import lzma_mt raises ImportError
    importlib.reload(xz)
    assert xz.BACKEND == "lzma"
    assert "lzma (liblzma " in xz.backend()
    for block, size in xz_blocks[:5]:
        assert xz.decompress(block[9:], size) == lzma.decompress(block[9:])
    with pytest.raises(xz.XZError):
        xz.decompress(block[9:-20], size)
    assert xz.install() is False  # nothing to gain: uproot keeps its own


def test_fallback_when_the_library_links_an_old_xz(patched):
    old = types.ModuleType("lzma_mt")
    old.get_xz_version = lambda: "5.4.1"
    patched.setitem(sys.modules, "lzma_mt", old)
    importlib.reload(xz)
    assert xz.BACKEND == "lzma"


def test_forced_stdlib(patched):
    patched.setenv("FACILITY_XZ", "stdlib")
    importlib.reload(xz)
    assert xz.BACKEND == "lzma"


def test_install_routes_uproot_through_it(lzma_file, monkeypatch):
    assert xz.BACKEND == "lzma_mt", "lzma-mt is a dependency: install() would leave uproot alone"
    xz.uninstall()  # opening files through the facility's reader installs it
    branches = ["nTrack", "Track_pt", "Muon_pt"]
    with uproot.open(lzma_file) as f:
        before = f["Events"].arrays(branches, library="np")
    calls = []
    real = xz._decompress
    monkeypatch.setattr(xz, "_decompress", lambda data: calls.append(1) or real(data))
    try:
        assert xz.install() is True
        assert xz.install() is True  # idempotent
        with uproot.open(lzma_file) as f:
            after = f["Events"].arrays(branches, library="np")
        assert calls, "uproot did not call analysis_kernels.xz"
        public = uproot.compression.LZMA(5)
        assert public.decompress(lzma.compress(b"x" * 1000)) == b"x" * 1000
    finally:
        xz.uninstall()
    for name in branches:
        for a, b in zip(before[name], after[name], strict=True):
            np.testing.assert_array_equal(a, b)
    n = len(calls)
    with uproot.open(lzma_file) as f:
        f["Events"].arrays(branches, library="np")
    assert len(calls) == n, "uninstall() should give uproot its own decompressor back"
