"""Random search under the same constraints and budget: the baseline every method must beat."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from search.problem import Problem
from supernet.errors import ConfigError
from supernet.space import Arch

log = logging.getLogger(__name__)


def sample_new_feasible(
    problem: Problem,
    rng: np.random.Generator,
    n: int,
    max_tries: int = 1000,
    exclude: set[str] | None = None,
) -> list[Arch]:
    """Up to `n` distinct, not yet validated archs that meet the cost constraints.

    Constraints are on costs, which are free, so infeasible samples are rejected before
    any validation. Fewer than `n` come back only when `max_tries` samples in a row were
    rejected (a tiny feasible region or an exhausted space).

    Args:
        exclude: arch ids to skip as well (e.g. those already chosen for a batch).
    """
    chosen: dict[str, Arch] = {}
    skip = exclude or set()
    misses = 0
    while len(chosen) < n and misses < max_tries:
        arch = problem.space.sample(rng)
        key = arch.arch_id
        if key in chosen or key in skip or problem.seen(arch) or not problem.cost_feasible(arch):
            misses += 1
            continue
        chosen[key] = arch
        misses = 0
    return list(chosen.values())


class RandomSearch:
    """Uniform random sampling of new feasible archs until the budget is spent.

    Args:
        batch_size: archs validated per `problem.evaluate` call (bigger batches let an
            evaluator amortise its set-up; the sequence of archs does not depend on it).
        max_tries: rejected samples in a row before concluding no new feasible arch exists.
    """

    name = "random"

    def __init__(self, batch_size: int = 50, max_tries: int = 1000) -> None:
        if batch_size < 1 or max_tries < 1:
            raise ConfigError("batch_size and max_tries must be positive")
        self.batch_size = batch_size
        self.max_tries = max_tries

    def run(self, problem: Problem, rng: np.random.Generator) -> dict[str, Any]:
        stopped = "budget"
        while problem.remaining > 0:
            want = min(self.batch_size, problem.remaining)
            batch = sample_new_feasible(problem, rng, want, self.max_tries)
            if batch:
                problem.evaluate(batch)
            if len(batch) < want:
                stopped = "no new feasible arch found"
                log.warning(
                    "random search stops with %d validations left: %s", problem.remaining, stopped
                )
                break
        return {"stopped": stopped}
