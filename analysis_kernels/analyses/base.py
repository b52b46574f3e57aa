"""What an analysis is: the branches it reads, a function per chunk, and a summary.

``process`` maps one chunk of events to histograms and counters that merge by addition,
plus optionally the selected events to harvest. ``summarize`` turns the merged output into
numbers a physicist reads (fitted yields, efficiencies, signal-region yields).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak

Output = dict[str, Any]
ChunkResult = tuple[Output, ak.Array | None]


@dataclass(frozen=True)
class Analysis:
    name: str
    title: str
    branches: Mapping[str, str]
    process: Callable[..., ChunkResult]
    summarize: Callable[[Output, Mapping[str, Any]], dict]
    figures: str  # the function of analysis_kernels.plots that draws this analysis
    headline: Callable[[dict], list[str]] = lambda summary: []
    defaults: Mapping[str, Any] = field(default_factory=dict)
    truth_branches: Mapping[str, str] = field(default_factory=dict)
    dataset: str = ""  # the generator whose data it reads, when not named like the analysis

    @property
    def generator(self) -> str:
        return self.dataset or self.name

    def params(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The analysis' parameters: defaults overridden by ``given``, unknown names refused."""
        given = dict(given or {})
        unknown = set(given) - set(self.defaults)
        if unknown:
            raise ValueError(
                f"analysis {self.name!r} has no parameter(s) {', '.join(sorted(unknown))}; "
                f"it takes: {', '.join(self.defaults) or 'none'}"
            )
        return {**self.defaults, **given}

    def plot(self, output: Output, summary: dict, directory: str | Path) -> list[Path]:
        """Draw the analysis' figures into ``directory``; return their paths."""
        from analysis_kernels import plots

        return getattr(plots, self.figures)(output, summary, Path(directory))

    def branches_for(self, params: Mapping[str, Any]) -> dict[str, str]:
        """Exactly the branches this run reads: MC-truth branches only when asked for."""
        extra = self.truth_branches if params.get("mc_truth") else {}
        return {**self.branches, **extra}


def merge(a: Output, b: Output) -> Output:
    """Add two outputs key by key (histograms, numbers, nested dicts)."""
    out = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
        elif isinstance(value, dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = out[key] + value
    return out
