"""NSGA-II on real validations (pymoo ask/tell): LINAS without its predictors.

Each generation's offspring are validated through the problem. Two things spare the
budget: offspring already seen are never proposed again (duplicate elimination against
the whole history), and offspring that break a cost constraint are not validated: costs
are free, and pymoo's constrained dominance ranks infeasible individuals by their
constraint violation alone, so their objectives are never read.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from pymoo.core.evaluator import Evaluator
from pymoo.core.population import Population
from pymoo.core.termination import NoTermination
from pymoo.problems.static import StaticProblem

from search.problem import Problem
from search.strategies._genetic import GeneCodec, GeneProblem, make_nsga2, seed_from
from supernet.errors import ConfigError

log = logging.getLogger(__name__)


def tell_measured(
    algorithm: Any, gene_problem: GeneProblem, pop: Population, F: np.ndarray, G: np.ndarray
) -> None:
    """Hand measured objectives and constraints of an asked population back to pymoo."""
    kwargs: dict[str, np.ndarray] = {"F": F}
    if gene_problem.n_ieq_constr:
        kwargs["G"] = G
    Evaluator().eval(StaticProblem(gene_problem, **kwargs), pop)
    algorithm.tell(infills=pop)


class NSGA2Search:
    """NSGA-II with integer genes, SBX (p 0.9, η 15), PM (η 20), rounding repair.

    Args:
        population: population size and offspring per generation (validations per
            generation, fewer when offspring break a constraint).
    """

    name = "nsga2"

    def __init__(self, population: int = 50) -> None:
        if population < 2:
            raise ConfigError(f"population must be at least 2, got {population}")
        self.population = population

    def run(self, problem: Problem, rng: np.random.Generator) -> dict[str, Any]:
        codec = GeneCodec(problem.space)
        told: set[bytes] = set(codec.keys(codec.encode(ev.arch for ev in problem.history)))
        gene_problem = GeneProblem(codec, len(problem.objectives), len(problem.constraints))
        algorithm = make_nsga2(codec, self.population, seed_from(rng), exclude=lambda: told)
        algorithm.setup(gene_problem, termination=NoTermination())
        placeholder = np.nan_to_num(problem.reference_point(), posinf=1e30, neginf=-1e30)

        generations, skipped, stopped = 0, 0, "budget"
        while problem.remaining > 0:
            pop = algorithm.ask()
            if pop is None or len(pop) == 0:
                stopped = "no new arch proposed"
                break
            genes = codec.canonical(pop.get("X"))
            archs = codec.decode(genes)
            ok = [problem.cost_feasible(a) for a in archs]
            wanted = [a for a, good in zip(archs, ok, strict=True) if good]
            if len(problem.affordable(wanted)) < len(wanted):
                problem.evaluate(problem.affordable(wanted))  # the last, partial generation
                break
            measured = iter(problem.evaluate(wanted))
            F = np.empty((len(archs), len(problem.objectives)))
            for i, good in enumerate(ok):
                F[i] = problem.F(next(measured)) if good else placeholder
            G = np.array([problem.G(problem.cost(a)) for a in archs]).reshape(len(archs), -1)
            tell_measured(algorithm, gene_problem, pop, F, G)
            told.update(codec.keys(genes))
            generations += 1
            skipped += len(archs) - len(wanted)
        if stopped != "budget":
            log.warning("NSGA-II stops with %d validations left: %s", problem.remaining, stopped)
        return {"generations": generations, "infeasible_not_validated": skipped, "stopped": stopped}
