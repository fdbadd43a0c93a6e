"""Regularized evolution (Real et al. 2019): tournament selection, one-gene mutation, aging.

The fitness is the first objective (e.g. accuracy); the constraints are met by rejection:
a child that breaks a cost constraint, or was already validated, is mutated again, since
costs are free and only validations count.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import numpy as np

from search.problem import Problem
from search.strategies.random import sample_new_feasible
from supernet.errors import ConfigError
from supernet.space import Arch

log = logging.getLogger(__name__)


class RegularizedEvolution:
    """Aging evolution with a population of `population` and tournaments of `tournament`.

    Args:
        population: archs alive at once; the oldest dies when a child is born.
        tournament: random members compared to pick each parent (best first objective).
        batch_size: children bred from the same population and validated together
            (1 is the sequential algorithm of the paper).
        max_tries: mutations tried per child before falling back to a random new arch.
    """

    name = "evolution"

    def __init__(
        self, population: int = 50, tournament: int = 10, batch_size: int = 1, max_tries: int = 100
    ) -> None:
        if population < 2 or not 1 <= tournament <= population:
            raise ConfigError(
                f"need population >= 2 and 1 <= tournament <= population, got "
                f"{population=} {tournament=}"
            )
        if batch_size < 1 or max_tries < 1:
            raise ConfigError("batch_size and max_tries must be positive")
        self.population = population
        self.tournament = tournament
        self.batch_size = batch_size
        self.max_tries = max_tries

    def run(self, problem: Problem, rng: np.random.Generator) -> dict[str, Any]:
        first = problem.objectives[0]

        score: dict[str, float] = {}  # arch_id -> first objective, minimised

        def validate(archs: list[Arch]) -> None:
            for arch, m in zip(archs, problem.evaluate(archs), strict=True):
                score[arch.arch_id] = float(problem.F(m)[0])

        want = min(self.population, problem.remaining)
        initial = sample_new_feasible(problem, rng, want)
        if initial:
            validate(initial)
        alive: deque[Arch] = deque(initial, maxlen=self.population)
        extras: dict[str, Any] = {"fitness": first, "mutations_rejected": 0, "random_children": 0}
        stopped = "budget" if len(initial) == want else "no new feasible arch found"
        while problem.remaining > 0 and stopped == "budget":
            children: list[Arch] = []
            ids: set[str] = set()
            for _ in range(min(self.batch_size, problem.remaining)):
                members = rng.choice(
                    len(alive), size=min(self.tournament, len(alive)), replace=False
                )
                parent = min((alive[int(i)] for i in members), key=lambda a: score[a.arch_id])
                child = self._mutate(problem, parent, rng, ids, extras)
                if child is None:
                    stopped = "no new feasible arch found"
                    break
                children.append(child)
                ids.add(child.arch_id)
            if children:
                validate(children)
                alive.extend(children)  # maxlen drops the oldest: age-based removal
        if stopped != "budget":
            log.warning("evolution stops with %d validations left: %s", problem.remaining, stopped)
        extras["stopped"] = stopped
        return extras

    def _mutate(
        self,
        problem: Problem,
        parent: Arch,
        rng: np.random.Generator,
        taken: set[str],
        extras: dict[str, Any],
    ) -> Arch | None:
        for _ in range(self.max_tries):
            child = problem.space.mutate(parent, rng)
            if (
                child.arch_id not in taken
                and not problem.seen(child)
                and problem.cost_feasible(child)
            ):
                return child
            extras["mutations_rejected"] += 1
        fallback = sample_new_feasible(problem, rng, 1, exclude=taken)
        extras["random_children"] += len(fallback)
        return fallback[0] if fallback else None
