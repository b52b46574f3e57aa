"""analyses.merge's fast path for plain histograms (the C++ ``+=`` alone, a cheap copy) and
its fallbacks: each merge the same as boost-histogram's own ``+`` and ``+=``."""

from __future__ import annotations

import copy
import pickle

import boost_histogram as bh
import hist
import numpy as np
import pytest

from analysis_kernels.analyses import dt_tnp
from analysis_kernels.analyses.adl import AXES, _h
from analysis_kernels.analyses.base import clone, merge

STORAGES = [hist.storage.Double(), hist.storage.Weight(), hist.storage.Int64()]


def filled(storage, seed: int, cls=hist.Hist, axis=None):
    """A histogram with entries in every bin, flow bins included (weighted where it can)."""
    h = cls(axis or hist.axis.Regular(5, 0, 1, name="x", label="x [GeV]"), storage=storage)
    values = np.random.default_rng(seed).uniform(-0.5, 1.5, 200)
    if isinstance(storage, hist.storage.Int64):
        h.fill(values)
    else:
        h.fill(values, weight=np.linspace(0.1, 2.0, 200))
    return h


def same_histogram(a, b) -> None:
    """Same class, bins (flow and variances too), attributes and axis metadata."""
    assert type(a) is type(b)
    assert a == b
    assert np.array_equal(a.view(flow=True), b.view(flow=True))
    assert a.__dict__ == b.__dict__
    assert a.axes == b.axes
    assert [ax.__dict__ for ax in a.axes] == [ax.__dict__ for ax in b.axes]
    assert (a.variances() is None) == (b.variances() is None)


@pytest.mark.parametrize("cls", [hist.Hist, bh.Histogram])
@pytest.mark.parametrize("storage", STORAGES, ids=lambda s: type(s).__name__)
def test_plain_histograms_merge_as_boost_histogram_adds(storage, cls):
    axis = (hist.axis if cls is hist.Hist else bh.axis).Regular(5, 0, 1, metadata={"m": 1})
    a, b = filled(storage, 1, cls, axis), filled(storage, 2, cls, axis)
    before = copy.deepcopy((a, b))
    summed = merge({"h": a}, {"h": b})["h"]
    same_histogram(summed, a + b)
    for kept, now in zip(before, (a, b), strict=True):
        same_histogram(now, kept)
    assert summed.axes[0].__dict__ is not a.axes[0].__dict__  # its own metadata, as a + b
    owned = {id(summed)}
    again = merge({"h": summed}, {"h": b}, owned)["h"]
    expected = a + b
    expected += b
    assert again is summed
    same_histogram(again, expected)


@pytest.mark.parametrize("owned", [None, set()], ids=["copy", "in-place"])
def test_mismatched_axes_still_refuse_to_merge(owned):
    a = filled(hist.storage.Double(), 1)
    b = filled(hist.storage.Double(), 2, axis=hist.axis.Regular(6, 0, 1, name="x"))
    kept = a.copy()
    if owned is not None:
        owned.add(id(a))
    with pytest.raises(ValueError, match="axes not mergable"):
        merge({"h": a}, {"h": b}, owned)
    same_histogram(a, kept)


def test_different_storages_take_the_generic_path_and_its_error():
    a, b = filled(hist.storage.Double(), 1), filled(hist.storage.Weight(), 2)
    with pytest.raises(TypeError, match="different storage types"):
        merge({"h": a}, {"h": b})


def test_growing_axes_take_the_generic_path():
    def categories(*names):
        h = hist.Hist(hist.axis.StrCategory([], growth=True, name="c"))
        h.fill(list(names))
        return h

    a, b = categories("x", "y"), categories("y", "z")
    owned: set[int] = set()
    summed = merge({"h": a}, {"h": b}, owned)["h"]
    same_histogram(summed, a + b)
    summed = merge({"h": summed}, {"h": categories("w")}, owned)["h"]
    assert list(summed.axes[0]) == ["x", "y", "z", "w"]
    assert summed.values().tolist() == [1, 2, 1, 1]


def test_a_subclass_keeps_its_own_addition():
    class Counted(hist.Hist):
        calls = 0

        def __iadd__(self, other):
            Counted.calls += 1
            return super().__iadd__(other)

    a, b = (filled(hist.storage.Double(), seed, Counted) for seed in (1, 2))
    owned: set[int] = set()
    summed = merge({"h": a}, {"h": b}, owned)["h"]
    merge({"h": summed}, {"h": b}, owned)
    assert Counted.calls == 2  # a + b goes through __iadd__ too


def test_other_outputs_merge_as_before():
    a = {"n": 3, "x": 0.5, "arr": np.arange(3.0), "nested": {"k": 1, "h": _h("met")}}
    b = {"n": 4, "x": 0.25, "arr": np.ones(3), "nested": {"k": 2}, "new": 7}
    merged = merge(a, b, set())
    assert merged["n"] == 7 and merged["x"] == 0.75 and merged["new"] == 7
    assert merged["arr"].tolist() == [1.0, 2.0, 3.0]
    assert a["arr"].tolist() == [0.0, 1.0, 2.0]
    assert merged["nested"]["k"] == 3 and merged["nested"]["h"] is a["nested"]["h"]


@pytest.mark.parametrize("storage", STORAGES, ids=lambda s: type(s).__name__)
def test_clone_is_copy(storage):
    h = filled(storage, 3)
    h.name, h.label = "n", "l"
    made = clone(h)
    same_histogram(made, copy.copy(h))
    assert made.axes[0].__dict__ is not h.axes[0].__dict__
    assert type(made.axes) is type(h.axes)
    # each axis' metadata is its C++ axis' own, as boost-histogram makes axes
    assert made.axes[0].__dict__ is made._hist.axis(0).raw_metadata
    made.fill([0.5])
    made.axes[0].label = "changed"
    assert h.axes[0].label == "x [GeV]" and made != h
    assert made._hist.axis(0).raw_metadata["label"] == "changed"
    assert pickle.loads(pickle.dumps(made)).axes[0].label == "changed"


def test_clone_of_a_growing_axis_is_copy():
    h = hist.Hist(hist.axis.StrCategory(["a"], growth=True, name="c", label="c"))
    h.fill(["a", "b"])
    made = clone(h)
    same_histogram(made, copy.copy(h))
    made.fill(["c"])
    assert list(h.axes[0]) == ["a", "b"] and list(made.axes[0]) == ["a", "b", "c"]


def test_clone_of_a_subclass_is_its_copy():
    class Tagged(hist.Hist):
        def __copy__(self):
            new = super().__copy__()
            new.tag = "copied"
            return new

    assert clone(filled(hist.storage.Double(), 1, Tagged)).tag == "copied"


@pytest.mark.parametrize("name", list(AXES))
def test_adl_histograms_are_new_empty_hists(name):
    made, expected = _h(name), hist.Hist(AXES[name])
    same_histogram(made, expected)
    assert made.values(flow=True).sum() == 0
    made.fill([0.0, 1e9])
    made.axes[0].label = "changed"
    same_histogram(_h(name), expected)


def test_dt_histograms_are_new_empty_hists(monkeypatch):
    """Copies of histograms made once, untouched by filling the last ones; the mass one on
    the mass axis of the moment."""
    made = dt_tnp._histograms()
    expected = dt_tnp._efficiency_histograms() | {"mass": hist.Hist(dt_tnp.MASS_AXIS)}
    entries = {
        "chamber": ("all", [0], [1], [1], [True]),
        "pt": ("all", [30.0], [1], [True]),
        "eta": ("all", [0.5], [1], [True]),
        "mass": ([91.0],),
    }
    assert made.keys() == expected.keys() == entries.keys()
    for name, h in made.items():
        same_histogram(h, expected[name])
        assert h.values(flow=True).sum() == 0
        h.fill(*entries[name])
        assert h.values(flow=True).sum() == 1
        h.axes[-1].label = "changed"
    for name, h in dt_tnp._histograms().items():
        same_histogram(h, expected[name])
    monkeypatch.setattr(dt_tnp, "MASS_AXIS", hist.axis.Regular(4, 0, 200, name="mass"))
    assert dt_tnp._histograms()["mass"].axes[0] == dt_tnp.MASS_AXIS
