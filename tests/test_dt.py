"""The DT segment-efficiency tag-and-probe: closure against the generated chamber efficiencies."""

from __future__ import annotations

import numpy as np

from analysis_kernels import run
from analysis_kernels.generate import load_truth


def test_fiducial_efficiencies_match_the_true_chamber_efficiencies(datasets):
    report = run("dt", datasets["dt"])
    truth = {
        (c["wheel"], c["sector"], c["station"]): c["efficiency"]
        for c in load_truth(datasets["dt"])["truth"]["chamber_efficiency"]
    }
    measured = [c for c in report.summary["fiducial"]["chambers"] if c["probes"] >= 30]
    assert len(measured) > 150  # most of the 240 chambers are probed
    pulls = []
    for c in measured:
        true = truth[(c["wheel"], c["sector"], c["station"])]
        sigma = np.sqrt(true * (1 - true) / c["probes"])
        pulls.append((c["efficiency"] - true) / sigma)
    pulls = np.array(pulls)
    assert abs(pulls.mean()) < 0.3
    assert 0.7 < pulls.std() < 1.3
    # Degraded chambers stand out.
    degraded = {k for k, v in truth.items() if v < 0.86}
    low = {(c["wheel"], c["sector"], c["station"]) for c in measured if c["efficiency"] < 0.88}
    assert low <= degraded and len(low) >= 0.5 * len(
        degraded & {(c["wheel"], c["sector"], c["station"]) for c in measured}
    )


def test_edges_lower_the_full_acceptance_efficiency(datasets):
    s = run("dt", datasets["dt"]).summary
    for station in ("MB1", "MB2", "MB3", "MB4"):
        assert (
            s["all"]["by_station"][station]["efficiency"]
            < s["fiducial"]["by_station"][station]["efficiency"]
        )
    assert s["cutflow"]["chamber_probes"] > 0 and s["cutflow"]["tag_probe_pairs"] > 0
