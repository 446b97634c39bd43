"""Small statistics helpers shared by the benchmark scenarios."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (fraction in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


@dataclass(frozen=True)
class HopSample:
    """Per-hop gaps (seconds) between consecutive steps of chains, and the run's wall time."""

    hop_seconds: tuple[float, ...]
    steps: int
    elapsed_seconds: float

    @classmethod
    def from_chains(cls, chains: Sequence[Sequence[datetime]], elapsed: float) -> HopSample:
        gaps: list[float] = []
        for stamps in chains:
            ordered = sorted(stamps)
            gaps.extend((b - a).total_seconds() for a, b in zip(ordered, ordered[1:], strict=False))
        return cls(tuple(gaps), sum(len(c) for c in chains), elapsed)

    @property
    def p50(self) -> float:
        return percentile(self.hop_seconds, 0.5)

    @property
    def p90(self) -> float:
        return percentile(self.hop_seconds, 0.9)

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.elapsed_seconds if self.elapsed_seconds else 0.0


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
