"""MathNAS (arXiv 2311.04943): measure m·n blocks, predict every network, solve a 0-1 program.

The strategy measures a block table on the problem (`search.mathnas.measure`) or loads one from
YAML, solves the exact program for each constraint setting (`search.mathnas.solve`), validates the
chosen networks for real, and reports the predicted front and the predictor's quality.

Variants beyond the paper (options, off by default): `top_k` validates the k best predicted
networks instead of one; `refit_rounds` splits those k validations into rounds and, after each,
refits the table's drops on every network validated so far (`_blockrank.refit_table`), so the
next round is picked by a predictor corrected where the single-context measurement was wrong.
For spaces of at most `enumerate_limit` networks the k best are found by ranking every
predicted network (exact, and far faster than k programs with exclusion cuts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from search.mathnas.measure import compose, measure_block_table, score_metric
from search.mathnas.rank import RankedTable, refit_table
from search.mathnas.solve import (
    BlockTableSolver,
    InfeasibleConstraintError,
    Solution,
    solve_block_table,
)
from search.mathnas.table import BlockTable, BlockTableError
from search.problem import Problem
from supernet.errors import ConfigError
from supernet.space import Arch

__all__ = ["MathNAS", "solve_block_table"]


class MathNAS:
    """MathNAS search strategy.

    Args:
        block_table: path of a YAML block table to use instead of measuring one (no validations
            are spent on it; it must match the space's nodes).
        flops_correction: predict with the F̄ / F(N) factor (a linear-fractional program).
        budgets: values of the first constraint to sweep for a predicted front (the other
            constraints stay); default: solve once at the problem's constraints.
        context: `average_flops` (the paper's N^avg) or `averaged` (drops averaged over
            several contexts, Eq. 3).
        contexts_fraction: for `averaged`, the fraction of contexts to draw.
        num_contexts: for `averaged`, an exact number of contexts (overrides the fraction).
        top_k: networks validated per constraint setting: the k best predicted.
        flops_metric: the cost metric that plays FLOPs.
        metric: the quality metric (default: the first accuracy/bleu/loss objective).
        quality_sample: random subnets validated to score the predictor, only if the budget
            left after the search pays for them (0 switches this off). They are held out of
            the result: reported in their own table with Spearman and Kendall τ, never in the
            front or the best rows.
        time_limit: seconds per MILP (None: no limit).
        engine: `auto` (the exact dynamic program for one constraint, HiGHS otherwise),
            `milp` (always HiGHS) or `dp`.
        repair_costs: extra solves that calibrate the predicted bounds on the picks' real costs
            (free), so that the validated networks really meet the constraints (0: trust the
            predicted costs).
        save_table: where to write the measured block table as YAML (None: not written).
        flops_samples: archs drawn to estimate the space's mean FLOPs F̄ (costs are free).
        refit_rounds: split the `top_k` validations into this many rounds and refit the drops
            on all validated networks before each later round (1: no refit, the paper).
        refit_ridge: weight pulling the refitted Acc(Ñ) and drops towards the measured ones.
        enumerate_limit: rank every predicted network instead of solving one program per
            pick when the space has at most this many (only for `top_k` > 1; 0: never).
        clip_drops: predict with negative accuracy drops set to zero (blocks measured better
            than the largest block are taken as noise); the saved table keeps the measured
            drops.
    """

    name = "mathnas"

    def __init__(
        self,
        block_table: str | None = None,
        flops_correction: bool = True,
        budgets: Sequence[float] | None = None,
        context: str = "average_flops",
        contexts_fraction: float = 1.0,
        num_contexts: int | None = None,
        top_k: int = 1,
        flops_metric: str = "macs",
        metric: str | None = None,
        quality_sample: int = 50,
        time_limit: float | None = 60.0,
        engine: str = "auto",
        repair_costs: int = 10,
        save_table: str | None = None,
        flops_samples: int = 256,
        refit_rounds: int = 1,
        refit_ridge: float = 1.0,
        enumerate_limit: int = 200_000,
        clip_drops: bool = False,
    ) -> None:
        if top_k < 1:
            raise ConfigError(f"top_k must be at least 1, got {top_k}")
        if not 1 <= refit_rounds <= top_k:
            raise ConfigError(f"refit_rounds must be in [1, top_k={top_k}], got {refit_rounds}")
        if refit_ridge <= 0:
            raise ConfigError(f"refit_ridge must be positive, got {refit_ridge}")
        self.block_table = block_table
        self.flops_correction = flops_correction
        self.budgets = None if budgets is None else [float(b) for b in budgets]
        self.context = context
        self.contexts_fraction = contexts_fraction
        self.num_contexts = num_contexts
        self.top_k = top_k
        self.flops_metric = flops_metric
        self.metric = metric
        self.quality_sample = quality_sample
        self.time_limit = time_limit
        self.engine = engine
        self.repair_costs = repair_costs
        self.save_table = save_table
        self.flops_samples = flops_samples
        self.refit_rounds = refit_rounds
        self.refit_ridge = refit_ridge
        self.enumerate_limit = enumerate_limit
        self.clip_drops = clip_drops

    # --- the run ----------------------------------------------------------------------------
    def run(self, problem: Problem, rng: np.random.Generator) -> dict[str, Any]:
        """Measure (or load) the table, solve per constraint setting, validate the picks."""
        name, sign = score_metric(problem, self.metric)
        used0 = problem.used
        if self.block_table is not None:
            table = BlockTable.load(self.block_table).for_space(problem.space)
            if table.metric != name:
                raise BlockTableError(
                    f"block table {self.block_table!r} holds {table.metric!r}, the problem "
                    f"is searched on {name!r}"
                )
        else:
            table = measure_block_table(
                problem,
                context=self.context,
                contexts_fraction=self.contexts_fraction,
                num_contexts=self.num_contexts,
                flops_metric=self.flops_metric,
                metric=name,
                flops_samples=self.flops_samples,
                rng=rng,
            )
        table_validations = problem.used - used0
        if self.save_table:
            table.save(self.save_table)
        measured_table = table
        if self.clip_drops:
            table = table.clipped_drops()

        solver = BlockTableSolver(table, self.time_limit, self.engine)
        ranked = self._ranked(table)
        settings = self._settings(problem, table)
        notes: list[str] = []
        per_round = [len(r) for r in np.array_split(range(self.top_k), self.refit_rounds)]
        solved: list[tuple[dict[str, float], list[Solution], float, str | None]] = []
        for cons in settings:
            start = solver.seconds
            try:
                sols = self._pick(solver, ranked, problem, cons, notes, per_round[0], set())
                note = None
            except InfeasibleConstraintError as err:
                if self.budgets is None:
                    raise
                sols, note = [], str(err)
            solved.append((cons, sols, solver.seconds - start, note))

        scores = self._validate_picks(problem, solved, name, sign, notes)
        rounds = {sol.choices: 0 for _, sols, _, _ in solved for sol in sols}
        fitted = table
        for r, k in enumerate(per_round[1:], 1):
            if problem.remaining <= 0:
                notes.append(f"refit round {r} skipped: the budget is spent")
                break
            observed = [
                (problem.space.node_choices(ev.arch), sign * ev.measurement[name])
                for ev in problem.history
            ]
            fitted = refit_table(table, observed, self.flops_correction, self.refit_ridge)
            solver_r = BlockTableSolver(fitted, self.time_limit, self.engine)
            ranked_r = self._ranked(fitted)
            seen = {tuple(c) for c, _ in observed}
            more: list[tuple[dict[str, float], list[Solution], float, str | None]] = []
            for cons, _, _, note in solved:
                try:
                    extra = (
                        []
                        if note
                        else self._pick(solver_r, ranked_r, problem, cons, notes, k, seen)
                    )
                except InfeasibleConstraintError:
                    extra = []
                more.append((cons, extra, 0.0, note))
                rounds.update({sol.choices: r for sol in extra if sol.choices not in rounds})
            scores.update(self._validate_picks(problem, more, name, sign, notes))
            solved = [
                (cons, sols + extra, secs + solver_r.seconds / len(solved), note)
                for (cons, sols, secs, note), (_, extra, _, _) in zip(solved, more, strict=True)
            ]
        front = []
        for cons, sols, seconds, note in solved:
            if note is not None:
                front.append({"constraints": cons, "infeasible": note, "solve_seconds": seconds})
            for rank, sol in enumerate(sols):
                arch = compose(problem.space, sol.choices)
                front.append(
                    {
                        "constraints": cons,
                        "rank": rank,
                        "round": rounds.get(sol.choices, 0),
                        "choices": list(sol.choices),
                        "arch": arch.to_dict(),
                        "arch_id": arch.arch_id,
                        "predicted_accuracy": sol.accuracy,
                        "predicted_costs": sol.costs,
                        "costs": problem.cost(arch),
                        "measured_accuracy": scores.get(arch.arch_id),
                        "optimal": sol.optimal,
                        "solve_seconds": seconds,
                    }
                )
        return {
            "metric": name if sign > 0 else f"-{name}",
            "flops_correction": self.flops_correction,
            "context": table.meta.get("context", self.context),
            "table_source": self.block_table or "measured",
            "table_validations": table_validations,
            "block_table": measured_table.to_dict(),
            "clip_drops": self.clip_drops,
            "refit_table": fitted.to_dict() if fitted is not table else None,
            "refit_rounds": self.refit_rounds,
            "ranked_by_enumeration": ranked is not None,
            "predicted_front": front,
            "solve_seconds": [s for _, _, s, _ in solved],
            "predictor_quality": self._quality(problem, table, rng, name, sign),
            "notes": notes,
        }

    def _ranked(self, table: BlockTable) -> RankedTable | None:
        """Every network ranked, when picks need exclusions and the space is small enough."""
        if self.top_k == 1 or RankedTable.size(table) > self.enumerate_limit:
            return None
        try:
            return RankedTable(table, self.flops_correction)
        except BlockTableError:
            return None  # the solver raises its own, explained error

    def _solve(
        self,
        solver: BlockTableSolver,
        ranked: RankedTable | None,
        bounds: dict[str, float],
        exclude: set[tuple[int, ...]],
    ) -> Solution:
        """Best predicted network under `bounds` (predicted costs) outside `exclude`."""
        if ranked is not None:
            sol, _ = ranked.best(bounds, exclude)
            if sol is not None:
                return sol
            if exclude:
                raise InfeasibleConstraintError("no further network meets the constraints")
        return solver.solve(bounds, self.flops_correction, [list(e) for e in exclude])

    def _pick(
        self,
        solver: BlockTableSolver,
        ranked: RankedTable | None,
        problem: Problem,
        constraints: dict[str, float],
        notes: list[str],
        k: int,
        exclude: set[tuple[int, ...]],
    ) -> list[Solution]:
        """The k best predicted networks outside `exclude` whose *real* costs (free) meet the
        constraints.

        The additive cost model is an approximation (a resolution scales every layer), so with
        `repair_costs` > 0 the predicted bound is calibrated: the next solve uses the
        constraint minus the last pick's prediction error (real − predicted), until the pick
        repeats; the best pick whose real cost fits is kept. With exact costs this stops after
        one solve.
        """
        bounds = dict(constraints)
        best: Solution | None = None
        best_bounds = bounds
        tried: set[tuple[int, ...]] = set()
        for step in range(self.repair_costs + 1):
            try:
                sol = self._solve(solver, ranked, bounds, exclude)
            except InfeasibleConstraintError:
                if step == 0:
                    raise
                break
            if sol.choices in tried:
                break
            tried.add(sol.choices)
            real = problem.cost(compose(problem.space, sol.choices))
            fits = all(real[k] <= b for k, b in constraints.items())
            if self.repair_costs == 0 or (fits and (best is None or sol.accuracy > best.accuracy)):
                best, best_bounds = sol, dict(bounds)
            bounds = {k: b - (real[k] - sol.costs[k]) for k, b in constraints.items()}
        if best is None:
            raise InfeasibleConstraintError(
                f"no pick's real cost meets {constraints} after {len(tried)} calibrated solves "
                f"(last predicted bounds {bounds})"
            )
        if best_bounds != constraints:
            notes.append(f"{constraints}: predicted bounds calibrated to {best_bounds}")
        sols, excluded = [best], {*exclude, best.choices}
        while len(sols) < k and len(excluded) < len(exclude) + 10 * k:
            try:
                sol = self._solve(solver, ranked, best_bounds, excluded)
            except InfeasibleConstraintError:
                break
            excluded.add(sol.choices)
            real = problem.cost(compose(problem.space, sol.choices))
            if self.repair_costs == 0 or all(real[k] <= b for k, b in constraints.items()):
                sols.append(sol)
        return sols

    def _settings(self, problem: Problem, table: BlockTable) -> list[dict[str, float]]:
        """The constraint dictionaries to solve: the problem's, or the sweep of `budgets`."""
        base = dict(problem.constraints)
        if self.budgets is None:
            return [base]
        if problem.constraints:
            metric = next(iter(problem.constraints))
        else:
            costs = [o for o in problem.objectives if o in table.columns]
            metric = costs[0] if costs else table.flops_metric
        table.base_value(metric)
        return [{**base, metric: b} for b in self.budgets]

    @staticmethod
    def _validate_picks(
        problem: Problem,
        solved: Sequence[tuple[dict[str, float], list[Solution], float, str | None]],
        name: str,
        sign: float,
        notes: list[str],
    ) -> dict[str, float]:
        """Validate the picks, best-ranked first across settings, within the budget."""
        by_rank: list[Arch] = []
        depth = max((len(sols) for _, sols, _, _ in solved), default=0)
        for rank in range(depth):
            for _, sols, _, _ in solved:
                if rank < len(sols):
                    by_rank.append(compose(problem.space, sols[rank].choices))
        affordable = {a.arch_id for a in problem.affordable(by_rank)}
        todo = [a for a in by_rank if problem.seen(a) or a.arch_id in affordable]
        skipped = len({a.arch_id for a in by_rank}) - len({a.arch_id for a in todo})
        if skipped:
            notes.append(f"{skipped} predicted networks were not validated: the budget ran out")
        measured = problem.evaluate(todo) if todo else []
        return {a.arch_id: sign * m[name] for a, m in zip(todo, measured, strict=True)}

    def _quality(
        self,
        problem: Problem,
        table: BlockTable,
        rng: np.random.Generator,
        name: str,
        sign: float,
    ) -> dict[str, Any]:
        """Predicted vs measured accuracy on random subnets, when the budget allows."""
        n = self.quality_sample
        if n <= 0:
            return {"skipped": "quality_sample is 0"}
        space = problem.space
        archs: dict[str, Arch] = {}
        for _ in range(20 * n):
            a = compose(space, space.node_choices(space.sample(rng)))
            archs.setdefault(a.arch_id, a)
            if len(archs) == n:
                break
        sample = list(archs.values())
        new = [a for a in sample if not problem.seen(a)]
        if len(new) > problem.remaining:
            return {
                "skipped": f"scoring the predictor needs {len(new)} new validations, "
                f"{problem.remaining} are left"
            }
        measured = np.array([sign * m[name] for m in problem.evaluate_held_out(sample)])
        predicted = np.array(
            [table.predict_accuracy(space.node_choices(a), self.flops_correction) for a in sample]
        )
        return {
            "samples": len(sample),
            **predictor_quality(predicted, measured),
        }


def predictor_quality(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float | None]:
    """Spearman, Kendall τ and mean absolute error (None where a rank statistic is undefined)."""
    out: dict[str, float | None] = {"mae": float(np.mean(np.abs(predicted - measured)))}
    if len(predicted) < 2 or np.ptp(predicted) == 0 or np.ptp(measured) == 0:
        out.update(spearman=None, kendall=None)
        return out
    out["spearman"] = float(stats.spearmanr(predicted, measured).statistic)
    out["kendall"] = float(stats.kendalltau(predicted, measured).statistic)
    return out
