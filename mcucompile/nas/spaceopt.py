"""Stage 1 of TinyNAS: choose the search space (width multiplier, resolution) for the board.

For each candidate (width, resolution) pair, sample subnets and keep those whose
peak SRAM, flash (and latency / energy, when budgeted) fit. A space whose
fitting subnets have more MACs holds more capable networks within the same
memory: MCUNet picks the space whose MAC distribution (CDF) of fitting subnets
lies furthest to the right, i.e. the highest mean MACs among fitting subnets.
Spaces where fewer than MIN_FIT_FRACTION of the samples fit are passed over
when any other space qualifies (the search would spend its time rejecting).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import BoardError
from .efficiency import Constraints, Cost, EfficiencyModel
from .space import SearchSpace

MIN_FIT_FRACTION = 0.05


@dataclass(frozen=True)
class SpaceStats:
    space: SearchSpace
    samples: int
    fitting_macs: tuple[int, ...]      # sorted MACs of the sampled subnets that fit
    smallest: Cost                     # cost of the space's smallest subnet

    @property
    def fit_fraction(self) -> float:
        return len(self.fitting_macs) / self.samples

    @property
    def mean_macs(self) -> float:
        return float(np.mean(self.fitting_macs)) if self.fitting_macs else 0.0

    def to_json(self) -> dict:
        return {"width": self.space.width, "resolution": self.space.resolution,
                "samples": self.samples, "fitting": len(self.fitting_macs),
                "fit_fraction": round(self.fit_fraction, 4), "mean_fitting_macs": self.mean_macs,
                "smallest_subnet": self.smallest.to_json()}


@dataclass(frozen=True)
class SpaceChoice:
    chosen: SearchSpace
    stats: tuple[SpaceStats, ...]

    def to_json(self) -> dict:
        return {"criterion": "highest mean MACs among sampled subnets that fit (MCUNet's FLOPs CDF), "
                             f"among spaces where at least {MIN_FIT_FRACTION:.0%} fit",
                "chosen": {"width": self.chosen.width, "resolution": self.chosen.resolution},
                "candidates": [s.to_json() for s in self.stats]}


def space_stats(space: SearchSpace, efficiency: EfficiencyModel, constraints: Constraints,
                samples: int, rng: np.random.Generator) -> SpaceStats:
    fitting = []
    for _ in range(samples):
        c = efficiency.cost(space.arch(space.sample(rng)))
        if constraints.fits(c):
            fitting.append(c.macs)
    return SpaceStats(space, samples, tuple(sorted(fitting)),
                      efficiency.cost(space.arch(space.smallest())))


def choose_space(widths: tuple[float, ...], resolutions: tuple[int, ...], in_channels: int,
                 num_classes: int, efficiency: EfficiencyModel, constraints: Constraints,
                 samples: int, rng: np.random.Generator, progress=None) -> SpaceChoice:
    stats = []
    for w in widths:
        for r in resolutions:
            stats.append(space_stats(SearchSpace(w, r, in_channels, num_classes), efficiency,
                                     constraints, samples, rng))
            if progress:
                progress(len(stats))
    viable = [s for s in stats if s.fitting_macs]
    if not viable:
        raise _nothing_fits(stats, efficiency, constraints)
    qualified = [s for s in viable if s.fit_fraction >= MIN_FIT_FRACTION] or viable
    best = max(qualified, key=lambda s: (s.mean_macs, s.fit_fraction))
    return SpaceChoice(best.space, tuple(stats))


def _nothing_fits(stats: list[SpaceStats], efficiency: EfficiencyModel,
                  constraints: Constraints) -> BoardError:
    smallest = min(stats, key=lambda s: (s.smallest.peak_sram, s.smallest.flash))
    c, sp = smallest.smallest, smallest.space
    board = efficiency.board
    why = "; ".join(constraints.violations(c)) or "it fits, but no sampled subnet did"
    return BoardError(
        f"no subnet of the search space fits board {board.name!r}: the smallest one (width "
        f"{sp.width:g}, resolution {sp.resolution}, depth {min(sp.depths)} per stage, kernel "
        f"{min(sp.kernels)}, expand {min(sp.expands)}) needs {c.peak_sram:,} B of SRAM for its "
        f"arena and {c.flash:,} B of flash ({c.weights:,} B weights + code), "
        + (f"{c.latency_ms:.2f} ms, " if c.latency_ms is not None else "")
        + f"but {why}. The board leaves {constraints.sram_bytes:,} B for the arena "
          f"({board.sram_bytes:,} B SRAM less the stack and runtime) and {constraints.flash_bytes:,} B "
          "of flash: choose a larger board, or smaller --widths / --resolutions")
