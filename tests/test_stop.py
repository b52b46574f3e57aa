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


def test_smearing_radius_bound_from_the_first_uniform():
    """The compiled pass skips a smearing where even the largest pT change it allows cannot
    reach a region; that bound reads |hash_normal| <= RADIUS[i] off the first uniform number
    (u1 below RADIUS_U1[:i] only), before any logarithm. It must hold for every value."""
    from analysis_kernels.kernels.stop import RADIUS, RADIUS_U1, _uniform
    from analysis_kernels.kinematics import _splitmix

    events, jets = np.arange(200_000, dtype=np.uint64)[:, None], np.arange(4, dtype=np.uint64)
    key = np.uint64(1003)
    normal = hash_normal(events, jets[None, :], key)
    with np.errstate(over="ignore"):
        state = _splitmix(_splitmix(_splitmix(events) ^ jets[None, :]) ^ key)
        u1 = ((_splitmix(state) >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
    assert u1[7, 3] == _uniform(state[7, 3])  # the kernel's own uniform number
    radius = RADIUS[(u1[..., None] < RADIUS_U1).sum(-1)]  # as the kernel picks it
    assert np.all(np.abs(normal) <= radius)
    assert (np.abs(normal) > RADIUS[0]).mean() > 0.1  # the smaller radii are exercised
    # The last radius bounds the hash's smallest u1, 2**-54; thresholds fall as radii grow.
    assert np.sqrt(-2 * np.log(2.0**-54)) < RADIUS[-1]
    assert np.all(np.diff(RADIUS) > 0) and np.all(np.diff(RADIUS_U1) < 0)
