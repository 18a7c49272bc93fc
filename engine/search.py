"""Scheme search: the set of candidates with the largest summed gain whose training memory fits a budget.

Exact (candidates tried in order of gain) where the space is small, evolutionary otherwise; memory is planned per set.
"""
from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field, replace
from typing import Callable

from engine.contribution import (AnalysisConfig, Candidate, Contribution, ContributionAnalysis, Progress,
                                 scheme_of)
from engine.scheme import UpdateScheme

Genome = tuple[int, ...]  # per group: 0 for nothing, i for the group's i-th option


@dataclass(frozen=True)
class SearchConfig:
    exact_limit: int = 4096      # enumerate every combination up to this many
    population: int = 24
    generations: int = 40
    seed: int = 0


@dataclass(frozen=True)
class SearchResult:
    scheme: UpdateScheme
    chosen: tuple[Contribution, ...]
    estimated_gain: float        # sum of the chosen candidates' gains alone
    training_bytes: int
    budget_bytes: int
    method: str
    sets_planned: int
    measured_gain: float | None = None
    measured_prefixes: tuple[float, ...] = ()  # the searched set grown part by part, measured as a whole

    def to_dict(self) -> dict:
        return {"scheme": self.scheme.to_dict(), "chosen": [c.candidate.name for c in self.chosen],
                "estimated_gain": self.estimated_gain, "measured_gain": self.measured_gain,
                "measured_prefixes": list(self.measured_prefixes),
                "training_bytes": self.training_bytes, "budget_bytes": self.budget_bytes,
                "method": self.method, "sets_planned": self.sets_planned}


@dataclass
class _Space:
    """Candidates that helped, by group, with memoized memory of any set of them."""

    groups: list[list[Contribution]]
    cost_of: Callable[[list[Candidate]], int]
    costs: dict[Genome, int] = field(default_factory=dict)

    def chosen(self, genome: Genome) -> list[Contribution]:
        return [options[i - 1] for options, i in zip(self.groups, genome) if i]

    def gain(self, genome: Genome) -> float:
        return sum(c.gain for c in self.chosen(genome))

    def cost(self, genome: Genome) -> int:
        if genome not in self.costs:
            chosen = [c.candidate for c in self.chosen(genome)]
            self.costs[genome] = self.cost_of(chosen) if chosen else 0
        return self.costs[genome]

    def size(self) -> int:
        return math.prod(len(options) + 1 for options in self.groups)


def _exact(space: _Space, budget: int) -> Genome:
    """Every combination in order of summed gain; the first that fits is the best."""
    genomes = itertools.product(*(range(len(options) + 1) for options in space.groups))
    for genome in sorted(genomes, key=space.gain, reverse=True):
        if space.cost(genome) <= budget:
            return genome
    raise AssertionError("the empty set always fits")


def _evolve(space: _Space, budget: int, config: SearchConfig) -> Genome:
    rng = random.Random(config.seed)
    empty = tuple(0 for _ in space.groups)

    def fitness(genome: Genome) -> float:
        cost = space.cost(genome)
        return space.gain(genome) if cost <= budget else -cost / budget

    def mutate(genome: Genome) -> Genome:
        genes = list(genome)
        g = rng.randrange(len(genes))
        genes[g] = rng.randrange(len(space.groups[g]) + 1)
        return tuple(genes)

    def cross(a: Genome, b: Genome) -> Genome:
        return tuple(rng.choice(pair) for pair in zip(a, b))

    population = [empty] + [mutate(empty) for _ in range(config.population - 1)]
    for _ in range(config.generations):
        population = sorted(set(population), key=fitness, reverse=True)[:config.population // 2]
        children = [mutate(cross(rng.choice(population), rng.choice(population)))
                    for _ in range(config.population - len(population))]
        population += children
    return max(population, key=fitness)


def search_scheme(table: list[Contribution], budget_bytes: int, cost_of: Callable[[list[Candidate]], int],
                  analysis: AnalysisConfig, config: SearchConfig = SearchConfig(), name: str = "sparse"
                  ) -> SearchResult:
    """The best set of helpful candidates (at most one per group) whose planned training memory fits."""
    groups: dict[str, list[Contribution]] = {}
    for contribution in table:
        if contribution.gain > 0:
            groups.setdefault(contribution.candidate.group, []).append(contribution)
    space = _Space(list(groups.values()), cost_of)
    exact = space.size() <= config.exact_limit
    best = _exact(space, budget_bytes) if exact else _evolve(space, budget_bytes, config)
    if space.cost(best) > budget_bytes:
        best = tuple(0 for _ in space.groups)
    chosen = space.chosen(best)
    return SearchResult(_scheme(name, chosen, budget_bytes, analysis), tuple(chosen), space.gain(best),
                        space.cost(best), budget_bytes, "exact" if exact else "evolutionary", len(space.costs))


def _scheme(name: str, chosen: list[Contribution], budget_bytes: int, analysis: AnalysisConfig) -> UpdateScheme:
    description = (f"searched: the best prequential gain under {budget_bytes / 1024:.0f} KiB of training memory: "
                   + (", ".join(c.candidate.name for c in chosen) or "nothing helped"))
    return scheme_of(name, [c.candidate for c in chosen], analysis, description)


def analyse_and_search(analysis: ContributionAnalysis, budget_bytes: int, config: SearchConfig = SearchConfig(),
                       progress: Progress | None = None) -> tuple[list[Contribution], SearchResult]:
    """Contribution table, then the search. Parts' gains alone do not simply add up, so the found set is then grown
    part by part in order of their own gains, each prefix measured as a whole; the best-measured prefix is kept."""
    report = progress or (lambda phase, done, total, what: None)
    table = analysis.run(progress)
    measured = []

    def cost_of(chosen: list[Candidate]) -> int:
        measured.append(len(chosen))
        report("search", len(measured), 0, f"sets measured, the last of {len(chosen)} parts")
        return analysis.training_bytes(chosen)
    result = search_scheme(table, budget_bytes, cost_of, analysis.config, config)
    ranked = sorted(result.chosen, key=lambda c: c.gain, reverse=True)
    prefixes = []
    for k in range(1, len(ranked) + 1):
        report("measuring the found set part by part", k - 1, len(ranked), ranked[k - 1].candidate.name)
        prefixes.append(analysis.gain(scheme_of("prefix", [c.candidate for c in ranked[:k]], analysis.config)))
    prefixes = tuple(prefixes)
    keep = max(range(len(prefixes)), key=prefixes.__getitem__, default=-1) + 1
    if keep == 0 or prefixes[keep - 1] <= 0:
        keep = 0
    chosen = ranked[:keep]
    return table, replace(result, scheme=_scheme(result.scheme.name, chosen, budget_bytes, analysis.config),
                          chosen=tuple(chosen), estimated_gain=sum(c.gain for c in chosen),
                          training_bytes=analysis.training_bytes([c.candidate for c in chosen]) if chosen else 0,
                          measured_gain=prefixes[keep - 1] if keep else 0.0, measured_prefixes=prefixes)
