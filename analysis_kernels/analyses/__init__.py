"""The benchmark analyses, by name."""

from __future__ import annotations

from analysis_kernels.analyses.adl import ANALYSES as ADL
from analysis_kernels.analyses.base import Analysis, merge
from analysis_kernels.analyses.ds_phipi import ANALYSIS as DS
from analysis_kernels.analyses.dt_tnp import ANALYSIS as DT
from analysis_kernels.analyses.stop_2l import ANALYSIS as STOP

ANALYSES: dict[str, Analysis] = {a.name: a for a in (DS, STOP, DT, *ADL)}


def get_analysis(name: str) -> Analysis:
    try:
        return ANALYSES[name]
    except KeyError:
        raise ValueError(
            f"unknown analysis {name!r}; choose one of {', '.join(ANALYSES)}"
        ) from None


__all__ = ["ANALYSES", "Analysis", "get_analysis", "merge"]
