"""LINAS (Cummings et al. 2022): NSGA-II on cheap predictors chooses what to validate next.

Loop: validate a small random sample; then repeatedly fit one predictor per metric on all
validated rows, run NSGA-II on the predictors (20,000 predictor calls, a gene matrix per
generation), and validate the `batch_size` best-ranked archs of the final NSGA-II population.
Small batches make many predictor rounds within a budget, so the predictors learn from what
the search itself found. Unlike the reference code, every proposed arch is new (by default
NSGA-II never keeps a validated one), infeasible proposals are dropped by their true cost before
validation, and the result is the exact front of all validations, not the last batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pymoo.optimize import minimize
from threadpoolctl import threadpool_limits

from search.predictors import (
    RIDGE_ALPHAS,
    SVR_CS,
    fast_predict,
    fit_predictor,
    predictor_family,
    predictor_quality,
)
from search.problem import Problem, metric_sense
from search.strategies._genetic import GeneCodec, GeneProblem, make_nsga2, seed_from
from search.strategies.random import sample_new_feasible
from supernet.errors import ConfigError
from supernet.space import Arch

log = logging.getLogger(__name__)


@dataclass
class LinasStep:
    """What one search step proposes, and what it cost in wall-clock seconds."""

    archs: list[Arch]
    predicted: np.ndarray  # (n, n_obj) predicted objectives of `archs`, minimised units
    models: dict[str, Any] = field(default_factory=dict)
    fit_seconds: float = 0.0
    search_seconds: float = 0.0
    cpu_seconds: float = 0.0  # process CPU time of the step (robust to a busy machine)

    @property
    def seconds(self) -> float:
        return self.fit_seconds + self.search_seconds


class LINAS:
    """Lightweight iterative NAS: predictor-guided NSGA-II, one validated batch per loop.

    Args:
        initial: random archs validated before the first predictor is fitted.
        population: NSGA-II population on the predictors.
        generations: NSGA-II generations per step (population × generations predictor
            evaluations; 50 × 400 = 20,000 as in the papers for MobileNetV3).
        batch_size: validations per predictor round: the best-ranked new feasible archs of
            the final population (None: the whole population, the reference code's batch).
        predict_costs: `auto` fits predictors for measured costs (latency, CPU time) and takes
            analytic ones (MACs, parameters) exactly from the cost model; True predicts every
            cost (as the papers do); False takes every cost from `problem.cost`, exact but one
            call per distinct candidate (slow for measured latency).
        folds: CV folds for choosing each predictor.
        ridge_alphas, svr_cs: predictor grids (an empty list leaves a family out).
        max_tries: rejected random samples in a row before the initial population (or a
            random fill) concludes no new feasible arch exists.
        blas_threads: BLAS threads during a search step. The matrices are small (hundreds
            of rows), and on a shared machine a multi-threaded BLAS made a Ridge fit 100x
            slower than one thread; `None` leaves the library default.
        exclude_validated: NSGA-II on the predictors never keeps an already validated arch,
            so every batch is `population` new archs near the predicted front. False is
            the reference code's behaviour: the final population minus what was validated,
            which can leave small batches.
    """

    name = "linas"

    def __init__(
        self,
        initial: int = 20,
        population: int = 50,
        generations: int = 400,
        batch_size: int | None = 10,
        predict_costs: bool | str = "auto",
        folds: int = 5,
        ridge_alphas: Sequence[float] = RIDGE_ALPHAS,
        svr_cs: Sequence[float] = SVR_CS,
        max_tries: int = 1000,
        blas_threads: int | None = 1,
        exclude_validated: bool = True,
    ) -> None:
        if initial < 2 or population < 2 or generations < 1 or folds < 2:
            raise ConfigError("need initial >= 2, population >= 2, generations >= 1, folds >= 2")
        if batch_size is not None and not 1 <= batch_size <= population:
            raise ConfigError(f"batch_size must be in [1, population={population}] or null, "
                              f"got {batch_size}")
        if predict_costs not in (True, False, "auto"):
            raise ConfigError(f"predict_costs is true, false or auto; got {predict_costs!r}")
        self.initial = initial
        self.population = population
        self.generations = generations
        self.batch_size = batch_size or population
        self.predict_costs = predict_costs
        self.folds = folds
        self.ridge_alphas = tuple(float(a) for a in ridge_alphas)
        self.svr_cs = tuple(float(c) for c in svr_cs)
        self.max_tries = max_tries
        self.blas_threads = blas_threads
        self.exclude_validated = exclude_validated

    # --- the outer loop ------------------------------------------------------------------
    def run(self, problem: Problem, rng: np.random.Generator) -> dict[str, Any]:
        want = min(self.initial, problem.remaining)
        initial = sample_new_feasible(problem, rng, want, self.max_tries)
        if initial:
            problem.evaluate(initial)
        iterations: list[dict[str, Any]] = []
        stopped = "budget"
        while problem.remaining > 0:
            if problem.used < 2:
                stopped = "too few feasible archs to fit predictors"
                break
            step = self.search_step(problem, rng)
            batch = problem.affordable(step.archs)
            random_fill = 0
            if not batch:  # NSGA-II found nothing new and feasible: explore at random
                batch = sample_new_feasible(problem, rng, min(self.population, problem.remaining))
                random_fill = len(batch)
            if not batch:
                stopped = "no new feasible arch found"
                break
            fitted_on = problem.used
            measured = problem.evaluate(batch)
            iterations.append(
                {
                    "iteration": len(iterations) + 1,
                    "fitted_on": fitted_on,
                    "validated": len(batch),
                    "random_fill": random_fill,
                    "fit_seconds": step.fit_seconds,
                    "search_seconds": step.search_seconds,
                    "step_seconds": step.seconds,
                    "step_cpu_seconds": step.cpu_seconds,
                    "predictors": {
                        m: {
                            "family": predictor_family(model),
                            "params": _plain_params(model.best_params_),
                            "cv_mape": -float(model.best_score_) * 100,
                        }
                        for m, model in step.models.items()
                    },
                    "quality": self._held_out_quality(problem, step.models, batch, measured),
                }
            )
        if stopped != "budget":
            log.warning("LINAS stops with %d validations left: %s", problem.remaining, stopped)
        return {
            "initial": len(initial),
            "iterations": iterations,
            "step_seconds": [it["step_seconds"] for it in iterations],
            "stopped": stopped,
        }

    # --- one search step ---------------------------------------------------------------------
    def search_step(self, problem: Problem, rng: np.random.Generator) -> LinasStep:
        """Fit the predictors on every validated row and run NSGA-II on them.

        Returns the new, cost-feasible archs of the final NSGA-II population (best
        predicted ranks first), ready to validate.
        """
        cpu = time.process_time()
        with threadpool_limits(limits=self.blas_threads):
            step = self._search_step(problem, rng)
        step.cpu_seconds = time.process_time() - cpu
        return step

    def _search_step(self, problem: Problem, rng: np.random.Generator) -> LinasStep:
        t0 = time.perf_counter()
        codec = GeneCodec(problem.space)
        archs = [ev.arch for ev in problem.history]
        genes = codec.encode(archs)
        X = codec.features(genes)
        smallest = problem.space.smallest()
        cost_names = set(problem.cost(smallest))
        analytic = set(problem.analytic_cost(smallest))
        metrics = list(dict.fromkeys([*problem.objectives, *problem.constraints]))
        predicted = [m for m in metrics if m not in cost_names or self._predicts(m, analytic)]
        models = {}
        for m in predicted:
            y = np.array([ev.measurement[m] for ev in problem.history])
            models[m] = fit_predictor(
                X, y, seed_from(rng), alphas=self.ridge_alphas, cs=self.svr_cs, folds=self.folds
            )
        fit_seconds = time.perf_counter() - t0

        t1 = time.perf_counter()
        predictors = {m: fast_predict(model) for m, model in models.items()}
        cost_cache: dict[bytes, dict[str, float]] = {}

        def exact_costs(block: np.ndarray) -> list[dict[str, float]]:
            keys = codec.keys(block)
            todo = [i for i, key in enumerate(keys) if key not in cost_cache]
            for i, arch in zip(todo, codec.decode(block[todo]), strict=True):
                cost_cache[keys[i]] = (problem.analytic_cost(arch) if self.predict_costs == "auto"
                                       else problem.cost(arch))
            return [cost_cache[key] for key in keys]

        def evaluate(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            feats = codec.features(block)
            values = {m: predict(feats) for m, predict in predictors.items()}
            missing = [m for m in metrics if m not in values]
            if missing:
                costs = exact_costs(block)
                for m in missing:
                    values[m] = np.array([c[m] for c in costs])
            F = np.column_stack(
                [-values[o] if metric_sense(o)[0] else values[o] for o in problem.objectives]
            )
            G = np.column_stack(
                [values[k] - b for k, b in problem.constraints.items()] or [np.zeros(len(block))]
            )
            return F, G

        validated = set(codec.keys(genes))
        start = self._initial_genes(codec, validated, rng)
        if len(start) == 0:  # every arch has been validated: nothing left to propose
            return LinasStep([], np.zeros((0, len(problem.objectives))), models, fit_seconds)
        gene_problem = GeneProblem(
            codec, len(problem.objectives), len(problem.constraints), evaluate
        )
        exclude = (lambda: validated) if self.exclude_validated else None
        algorithm = make_nsga2(codec, self.population, seed_from(rng), exclude, start)
        result = minimize(gene_problem, algorithm, ("n_gen", self.generations), verbose=False)
        pop = result.pop
        rank, crowding = pop.get("rank"), pop.get("crowding")
        order = (np.lexsort((-np.nan_to_num(crowding.astype(float), posinf=1e300), rank))
                 if rank is not None and crowding is not None else np.arange(len(pop)))
        final = codec.canonical(pop.get("X")[order])
        proposals: list[tuple[Arch, np.ndarray]] = []
        for a, f in zip(codec.decode(final), pop.get("F")[order], strict=True):  # best first
            if len(proposals) == self.batch_size:
                break  # costs of the rest are never asked for (they may be measured)
            if not problem.seen(a) and all(a.arch_id != p.arch_id for p, _ in proposals) \
                    and problem.cost_feasible(a):
                proposals.append((a, f))
        search_seconds = time.perf_counter() - t1
        return LinasStep(
            archs=[a for a, _ in proposals],
            predicted=np.array([f for _, f in proposals]).reshape(len(proposals), -1),
            models=models,
            fit_seconds=fit_seconds,
            search_seconds=search_seconds,
        )

    def _predicts(self, cost: str, analytic: set[str]) -> bool:
        """Whether a cost metric gets a predictor (see `predict_costs`)."""
        if self.predict_costs == "auto":
            return cost not in analytic
        return bool(self.predict_costs)

    def _initial_genes(
        self, codec: GeneCodec, validated: set[bytes], rng: np.random.Generator
    ) -> np.ndarray:
        """A uniform random start for NSGA-II, new archs only (empty if none is left)."""
        found: dict[bytes, np.ndarray] = {}
        for _ in range(100):  # 100 draws of a population: enough unless the space is spent
            draw = codec.canonical(
                rng.integers(0, codec.num_options, (self.population, len(codec.num_options)))
            )
            for key, row in zip(codec.keys(draw), draw, strict=True):
                fresh = key not in validated or not self.exclude_validated
                if len(found) < self.population and key not in found and fresh:
                    found[key] = row
            if len(found) == self.population:
                break
        return np.array(list(found.values()), dtype=np.int64).reshape(len(found), len(codec.upper))

    def _held_out_quality(
        self, problem: Problem, models: dict[str, Any], batch: list[Arch], measured: list[Any]
    ) -> dict[str, dict[str, float]]:
        """Predictor quality on the batch just validated: rows the predictors never saw."""
        codec = GeneCodec(problem.space)
        X = codec.features(codec.encode(batch))
        return {
            m: predictor_quality(model, X, np.array([meas[m] for meas in measured]))
            for m, model in models.items()
        }


def _plain_params(params: dict[str, Any]) -> dict[str, Any]:
    """Grid parameters without estimator objects (for JSON/YAML reports)."""
    return {k.split("__")[-1]: v for k, v in params.items() if isinstance(v, (int, float, str))}
