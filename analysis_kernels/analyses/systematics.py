"""Systematic variations of the stop analysis: names, kinds, and how each acts.

Variation 0 is the nominal. The fixed list (lepton energy scales, pile-up, QCD scales,
lepton and b-tagging scale factors) comes first; jet energy scale components and jet
energy resolution smearings then fill up to any requested number, so N can be hundreds.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import count


@dataclass(frozen=True)
class Variation:
    name: str
    kind: str  # nominal, jes, jer, ees, mes, pu, scale, lepsf, btag
    sign: int = 0  # +1 up, -1 down
    index: int = 0  # component or weight index


FIXED = [
    Variation("EES_up", "ees", +1),
    Variation("EES_down", "ees", -1),
    Variation("MES_up", "mes", +1),
    Variation("MES_down", "mes", -1),
    Variation("PU_up", "pu", +1),
    Variation("PU_down", "pu", -1),
    *[Variation(f"muRmuF_{i}", "scale", 0, i) for i in (0, 1, 2, 3, 5, 6, 7, 8)],
    Variation("LepSF_up", "lepsf", +1),
    Variation("LepSF_down", "lepsf", -1),
    Variation("BTagSF_up", "btag", +1),
    Variation("BTagSF_down", "btag", -1),
]


def variations(n: int) -> list[Variation]:
    """The first ``n`` variations, the nominal first."""
    if n < 1:
        raise ValueError(f"n_variations must be at least 1 (the nominal), got {n}")
    out = [Variation("nominal", "nominal"), *FIXED]
    for k in count():
        if len(out) >= n:
            break
        out += [
            Variation(f"JES{k}_up", "jes", +1, k),
            Variation(f"JES{k}_down", "jes", -1, k),
            Variation(f"JER{k}", "jer", 0, k),
        ]
    return out[:n]


def jes_amplitude(k: int) -> float:
    """JES component ``k`` shifts jet pT by ``amplitude * (1 + (|eta| / 2.8) ** power)``:
    a few per mille to a few percent, each component with its own eta shape."""
    return 0.005 * (1 + k % 5)


def jes_power(k: int) -> int:
    """The power of |eta| / 2.8 by which JES component ``k`` grows."""
    return 1 + k % 3


def jer_width(k: int) -> float:
    return 0.02 * (1 + k % 3)
