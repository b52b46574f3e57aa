"""The stop two-lepton analysis: variations on one read, physics of the variables."""

from __future__ import annotations

import numpy as np
import pytest

from analysis_kernels import run
from analysis_kernels.analyses.systematics import variations
from analysis_kernels.kinematics import hash_normal, invariant_mass


def test_variation_list_scales_to_hundreds():
    vs = variations(300)
    assert len(vs) == 300 and vs[0].name == "nominal"
    assert len({v.name for v in vs}) == 300
    assert {v.kind for v in vs} == {
        "nominal",
        "jes",
        "jer",
        "ees",
        "mes",
        "pu",
        "scale",
        "lepsf",
        "btag",
    }
    with pytest.raises(ValueError, match="at least 1"):
        variations(0)


def test_nominal_does_not_depend_on_how_many_variations(datasets):
    one = run("stop", datasets["stop"], params={"n_variations": 1})
    many = run("stop", datasets["stop"], params={"n_variations": 60})
    assert np.array_equal(one.output["yields"].values()[0], many.output["yields"].values()[0])
    assert one.output["mll"] == many.output["mll"]
    # Branches are read once per chunk, whatever the number of variations.
    assert one.bytes_read == many.bytes_read
    assert many.summary["variations"] == 60


def test_variations_move_yields_the_expected_way(datasets):
    report = run("stop", datasets["stop"], params={"n_variations": 30})
    h = report.output["yields"]
    total = {name: h[name, :, :].values().sum() for name in h.axes["variation"]}
    assert total["PU_up"] > total["nominal"] > total["PU_down"]
    assert total["LepSF_up"] > total["nominal"] > total["LepSF_down"]
    assert total["JES0_up"] != total["nominal"]
    sr = report.summary["signal_regions"]
    assert sr["SR4b-soft"]["nominal"] > 0 and sr["SR-mt2"]["nominal"] > 0


def test_smearing_belongs_to_the_event():
    events = np.arange(1000, dtype=np.uint64)
    a = hash_normal(events, np.uint64(3))
    assert np.array_equal(a[100:200], hash_normal(events[100:200], np.uint64(3)))
    assert abs(a.mean()) < 0.1 and abs(a.std() - 1) < 0.1
    assert not np.array_equal(a, hash_normal(events, np.uint64(4)))


def test_invariant_mass_of_back_to_back_massless_pair():
    m = invariant_mass(
        np.array([45.0]),
        np.array([0.0]),
        np.array([0.0]),
        0.0,
        np.array([45.0]),
        np.array([0.0]),
        np.array([np.pi]),
        0.0,
    )
    assert m == pytest.approx([90.0])


def test_unknown_parameter_is_refused(datasets):
    with pytest.raises(ValueError, match=r"no parameter.*n_variation.*it takes: n_variations"):
        run("stop", datasets["stop"], params={"n_variation": 5})
