"""Constrained evolutionary search over subnets (OFA's evolution finder), and the
random-sampling baseline it is measured against.

Both take the same black boxes: `cost(cfg) -> Cost` (efficiency.py, milliseconds)
and `accuracy(cfg) -> float` (validation accuracy with inherited weights, the
expensive part). Only subnets meeting the constraints are ever scored, and the
budget is counted in distinct subnets scored, so the two are compared at equal
cost. Plain Python and numpy: no TensorFlow here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import BoardError
from .efficiency import Constraints, Cost
from .space import SearchSpace, SubnetConfig

MAX_TRIES = 5000      # rejection sampling gives up after this many infeasible draws


@dataclass(frozen=True)
class EvolutionSettings:
    population: int
    generations: int
    parent_ratio: float = 0.25
    mutation_ratio: float = 0.5      # share of the children made by mutation (the rest: crossover)
    mutate_prob: float = 0.2         # per stage depth and per block choice
    # The first generation is the most-MAC `population` of this many times as many feasible
    # draws: under a memory limit, the fitting subnets with more compute are the more
    # accurate ones (MCUNet's premise for choosing the space), and costs are cheap to ask.
    init_oversample: int = 4


@dataclass(frozen=True)
class Candidate:
    config: SubnetConfig
    accuracy: float
    cost: Cost
    generation: int                  # -1: random search


@dataclass
class SearchHistory:
    """Every distinct subnet scored, in order, and the best after each generation."""
    scored: list[Candidate] = field(default_factory=list)
    best_per_generation: list[float] = field(default_factory=list)

    @property
    def best(self) -> Candidate:
        return max(self.scored, key=lambda c: (c.accuracy, -c.cost.macs))


class _Scorer:
    """Scores each distinct subnet once and records it."""

    def __init__(self, accuracy: Callable[[SubnetConfig], float], cost: Callable[[SubnetConfig], Cost],
                 history: SearchHistory, progress: Callable[[int], None] | None):
        self.accuracy, self.cost, self.history, self.progress = accuracy, cost, history, progress
        self.cache: dict[SubnetConfig, float] = {}
        self.generation = 0

    def __call__(self, cfg: SubnetConfig) -> float:
        if cfg not in self.cache:
            self.cache[cfg] = self.accuracy(cfg)
            self.history.scored.append(Candidate(cfg, self.cache[cfg], self.cost(cfg), self.generation))
            if self.progress:
                self.progress(len(self.cache))
        return self.cache[cfg]


def sample_feasible(space: SearchSpace, cost, constraints: Constraints, rng: np.random.Generator,
                    make: Callable[[], SubnetConfig] | None = None) -> SubnetConfig:
    """A subnet meeting the constraints: draw (or make) until one fits."""
    for _ in range(MAX_TRIES):
        cfg = make() if make else space.sample(rng)
        if constraints.fits(cost(cfg)):
            return cfg
    raise BoardError(f"found no subnet of space {space.label()} within the constraints in "
                     f"{MAX_TRIES} tries")


def mutate(cfg: SubnetConfig, space: SearchSpace, rng: np.random.Generator, prob: float) -> SubnetConfig:
    """Resample each stage's depth, and each block's kernel and expand ratio, with probability prob."""
    stages = []
    for stage in cfg.stages:
        depth = int(rng.choice(space.depths)) if rng.random() < prob else len(stage)
        blocks = [stage[j] if j < len(stage) else space.random_block(rng) for j in range(depth)]
        blocks = [space.random_block(rng) if rng.random() < prob else b for b in blocks]
        stages.append(tuple(blocks))
    return SubnetConfig(tuple(stages))


def crossover(a: SubnetConfig, b: SubnetConfig, rng: np.random.Generator) -> SubnetConfig:
    """Each stage's depth from either parent, each block from either parent that has it."""
    stages = []
    for sa, sb in zip(a.stages, b.stages):
        depth = len(sa) if rng.random() < 0.5 else len(sb)
        blocks = []
        for j in range(depth):
            options = [s[j] for s in (sa, sb) if j < len(s)]
            blocks.append(options[int(rng.integers(len(options)))])
        stages.append(tuple(blocks))
    return SubnetConfig(tuple(stages))


def _first_generation(space: SearchSpace, cost, constraints: Constraints,
                      settings: EvolutionSettings, rng: np.random.Generator) -> list[SubnetConfig]:
    pool: dict[SubnetConfig, None] = {}          # distinct, in draw order
    for _ in range(settings.population * max(1, settings.init_oversample)):
        pool[sample_feasible(space, cost, constraints, rng)] = None
    return sorted(pool, key=lambda c: -cost(c).macs)[:settings.population]


def evolve(space: SearchSpace, cost, accuracy, constraints: Constraints, settings: EvolutionSettings,
           rng: np.random.Generator, progress: Callable[[int], None] | None = None) -> SearchHistory:
    """Elitist evolution: keep the best parents, refill by mutation
    and crossover of parents, every child checked against the constraints first."""
    history = SearchHistory()
    score = _Scorer(accuracy, cost, history, progress)
    population = _first_generation(space, cost, constraints, settings, rng)
    n_parents = max(2, int(round(settings.parent_ratio * settings.population)))
    n_mutate = int(round(settings.mutation_ratio * settings.population))
    for g in range(settings.generations):
        score.generation = g
        ranked = sorted(set(population), key=lambda c: (-score(c), c))
        history.best_per_generation.append(score(ranked[0]))
        parents = ranked[:n_parents]
        children: list[SubnetConfig] = []
        for _ in range(n_mutate):
            parent = parents[int(rng.integers(len(parents)))]
            children.append(sample_feasible(
                space, cost, constraints, rng,
                make=lambda p=parent: mutate(p, space, rng, settings.mutate_prob)))
        while len(children) + len(parents) < settings.population:
            i, j = rng.choice(len(parents), size=2, replace=False)
            children.append(sample_feasible(
                space, cost, constraints, rng,
                make=lambda a=parents[i], b=parents[j]: crossover(a, b, rng)))
        population = parents + children
    score.generation = settings.generations
    for c in population:                    # the last generation's children are scored too
        score(c)
    history.best_per_generation.append(history.best.accuracy)
    return history


def random_search(space: SearchSpace, cost, accuracy, constraints: Constraints, evaluations: int,
                  rng: np.random.Generator, progress: Callable[[int], None] | None = None) -> SearchHistory:
    """The baseline: score `evaluations` distinct random subnets that meet the constraints."""
    history = SearchHistory()
    score = _Scorer(accuracy, cost, history, progress)
    score.generation = -1
    tries = 0
    while len(score.cache) < evaluations and tries < MAX_TRIES:
        score(sample_feasible(space, cost, constraints, rng))
        tries += 1
    history.best_per_generation.append(history.best.accuracy)
    return history


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points (cost, accuracy) that no other point beats on both (lower cost,
    higher accuracy), sorted by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -np.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front
