"""Exact MathNAS solve of a block table: a 0-1 program with scipy.optimize.milp (HiGHS).

Variables are one-hot binaries x(i, j) (node i uses option j): Σ_j x(i, j) = 1 per node, and
x_absent(l) ≤ x_absent(l') for consecutive optional nodes l < l' of one depth decision (once a
layer is absent, all later ones are). Each constraint is `cost(Ñ) + Σ Δcost · x ≤ bound`.

Without the FLOPs correction the objective Σ b^A x is linear. With it, the predicted accuracy
Acc(Ñ) − F̄ · (Σ b^A x) / (F(Ñ) + Σ b^F x) is linear-fractional: Dinkelbach's method solves it
exactly by a short sequence of 0-1 MILPs min Σ b^A x − λ (F(Ñ) + Σ b^F x), with λ set to the
ratio of the last solution, until the optimum of the MILP is 0 (then the ratio is minimal).

Engines: `milp` (HiGHS, any number of constraints, top-k exclusion cuts) and `dp` (the exact
Pareto dynamic program of `search.mathnas.dp`, at most one constraint, milliseconds on MobileNetV3
tables). `auto` takes the dynamic program where it applies and HiGHS otherwise.

The `milp` engine is warm-started: a feasible network close to the optimum (the dynamic
program's optimum under one constraint; the LP optimum, rounded and improved by swaps, under
several) gives Dinkelbach its first λ (its ratio; the LP relaxation's ratio, Charnes–Cooper,
without one) and each MILP an incumbent, against which `search.mathnas.reduce` prunes the program
exactly before HiGHS solves what is left. Usually one MILP proves the warm start optimal, or one
finds the optimum and a second proves it; tens of milliseconds on MobileNetV3 tables where
HiGHS alone took tenths of a second.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from search.mathnas.dp import FrontTooLarge, dp_minimise
from search.mathnas.reduce import Program, lp_bound, one_hot_rows, round_lp, solve_reduced
from search.mathnas.table import BlockTable, BlockTableError
from supernet.errors import ConfigError, NASError

ENGINES = ("auto", "milp", "dp")
FLOOR = "min_flops"  # internal row: predicted FLOPs ≥ the table's min_flops (see BlockTable)


class InfeasibleConstraintError(NASError, ValueError):
    """No network of the table meets the constraints; the message gives the smallest values."""


@dataclass(frozen=True)
class Solution:
    """A solved network: node choices, predicted accuracy and costs, and whether proven optimal."""

    choices: tuple[int, ...]
    accuracy: float
    costs: dict[str, float]
    optimal: bool = True
    iterations: int = 1


class BlockTableSolver:
    """The constant part of the 0-1 program of one table, reused across constraint values."""

    def __init__(
        self, table: BlockTable, time_limit: float | None = None, engine: str = "auto"
    ) -> None:
        if engine not in ENGINES:
            raise ConfigError(f"engine must be one of {ENGINES}, got {engine!r}")
        self.table = table
        self.time_limit = time_limit
        self.engine = engine
        self.seconds = 0.0  # time spent in `solve`, summed over calls
        self.offsets = np.concatenate([[0], np.cumsum(table.num_options)]).astype(int)
        self.n = int(self.offsets[-1])
        mono = []
        last: dict[str, int] = {}
        for i, node in enumerate(table.nodes):
            if node.optional:
                label = str(node.depth_label)
                if label in last:
                    prev = table.nodes[last[label]]
                    row = np.zeros(self.n)
                    row[self.offsets[last[label]] + int(prev.absent)] += 1.0  # type: ignore[arg-type]
                    row[self.offsets[i] + int(node.absent)] -= 1.0  # type: ignore[arg-type]
                    mono.append(row)
                last[label] = i
        self._mono = np.array(mono).reshape(len(mono), self.n)
        self.drop = table.vector("acc_drop")
        self.flops = table.vector("flops")
        self._min_cost: dict[str, tuple[float, tuple[int, ...]]] = {}
        self._cost_cache: dict[tuple[tuple[str, float], ...], tuple[np.ndarray, np.ndarray]] = {}

    # --- low level -------------------------------------------------------------------------
    def _rows(
        self, constraints: Mapping[str, float], exclude: Sequence[Sequence[int]] = ()
    ) -> tuple[np.ndarray, np.ndarray]:
        """All ≤ rows (a, b): the cost rows first (scaled to ~1), then depth, then exclusions."""
        key = tuple((k, float(v)) for k, v in constraints.items())
        if key not in self._cost_cache:
            rows, rhs = [], []
            for name, bound in key:
                if name == FLOOR:  # F(Ñ) + Σ b^F x ≥ bound
                    delta, cap = -self.flops, self.table.base_flops - bound
                else:
                    delta, cap = self.table.vector(name), bound - self.table.base_value(name)
                scale = max(float(np.max(np.abs(delta))), abs(cap), 1e-12)
                rows.append(delta / scale)
                rhs.append(cap / scale)
            a = np.vstack([np.array(rows).reshape(len(rows), self.n), self._mono])
            self._cost_cache[key] = (a, np.concatenate([rhs, np.zeros(len(self._mono))]))
        a, b = self._cost_cache[key]
        if exclude:
            ex = np.zeros((len(exclude), self.n))
            for k, choices in enumerate(exclude):
                ex[k, self.offsets[:-1] + np.asarray(choices, dtype=int)] = 1.0
            a = np.vstack([a, ex])
            b = np.concatenate([b, [len(ch) - 1.0 for ch in exclude]])
        return a, b

    def _minimise(
        self,
        c: np.ndarray,
        constraints: Mapping[str, float],
        exclude: Sequence[Sequence[int]] = (),
        incumbent: np.ndarray | None = None,
    ) -> tuple[np.ndarray | None, bool]:
        """min c·x under the constraints with the dynamic program if it applies, else HiGHS."""
        if self._use_dp(constraints, exclude):
            x = self._dp(c, constraints)
            if x is not None:
                return (None if x.size == 0 else x), True
        a, b = self._rows(constraints, exclude)
        prog = Program(c, a, b, self.offsets)
        return solve_reduced(prog, incumbent, self.time_limit)

    def _dp(self, c: np.ndarray, constraints: Mapping[str, float]) -> np.ndarray | None:
        """The dynamic program's optimum (empty when infeasible); None when its fronts explode."""
        name, bound = next(iter(constraints.items()), (None, np.inf))
        cost = None if name is None else self.table.vector(name)
        cap = np.inf if name is None else float(bound) - self.table.base_value(name)
        try:
            choices = dp_minimise(self.table, c, cost, cap, self.offsets)
        except FrontTooLarge:
            if self.engine == "dp":
                raise
            return None
        return np.zeros(0) if choices is None else self.one_hot(choices)

    def _use_dp(self, constraints: Mapping[str, float], exclude: Sequence[Sequence[int]]) -> bool:
        fits = _dp_fits(constraints) and not exclude
        if self.engine == "dp" and not fits:
            if FLOOR in constraints:
                raise ConfigError(
                    "the dp engine cannot keep predicted FLOPs above the table's min_flops, "
                    "which the FLOPs correction needs on this table; use engine auto or milp"
                )
            raise ConfigError("the dp engine takes at most one constraint and no exclusions")
        return self.engine != "milp" and fits

    def _lp_ratio(self, a: np.ndarray, b: np.ndarray, fx: np.ndarray) -> float | None:
        """min Σ b^A x / D(x) over the LP relaxation (Charnes–Cooper): λ ≤ the 0-1 optimum."""
        m = len(self.offsets) - 1
        eq = one_hot_rows(self.offsets)
        a_eq = np.vstack([np.hstack([eq, -np.ones((m, 1))]), np.append(fx, 1.0)[None, :]])
        b_eq = np.append(np.zeros(m), 1.0)
        a_ub = np.hstack([a, -b[:, None]]) if len(a) else None
        res = linprog(
            np.append(self.drop, 0.0),
            A_ub=a_ub,
            b_ub=None if a_ub is None else np.zeros(len(a)),
            A_eq=a_eq,
            b_eq=b_eq,
            bounds=(0, None),
            method="highs",
        )
        return float(res.fun) if res.status == 0 else None

    def _warm_start(
        self, constraints: Mapping[str, float], lam: float, fx: np.ndarray, correction: bool
    ) -> np.ndarray | None:
        """A good feasible network for HiGHS to beat. One constraint or none: the dynamic
        program's optimum (exact); more: the LP optimum rounded and improved by swaps. For the
        corrected objective a few Dinkelbach steps on top. None when neither finds one."""
        a, b = self._rows(constraints)

        def ratio(x: np.ndarray) -> float:
            return float(self.drop @ x) / (1.0 + float(fx @ x))

        def step(lam: float) -> np.ndarray | None:
            c = self.drop - lam * fx
            if _dp_fits(constraints):
                try:
                    x = self._dp(c, constraints)
                except FrontTooLarge:
                    return None
                return None if x is None or x.size == 0 else x
            prog = Program(c, a, b, self.offsets)
            lp = lp_bound(prog)
            return None if lp is None else round_lp(prog, lp)

        x = step(lam)
        for _ in range(3 if correction else 0):
            if x is None:
                break
            y = step(ratio(x))
            if y is None or ratio(y) >= ratio(x) - 1e-12 * (1.0 + abs(ratio(x))):
                break
            x = y
        return x

    def one_hot(self, choices: Sequence[int]) -> np.ndarray:
        x = np.zeros(self.n)
        x[self.offsets[:-1] + np.asarray(choices, dtype=int)] = 1.0
        return x

    def choices_of(self, x: np.ndarray) -> tuple[int, ...]:
        return tuple(
            int(np.argmax(x[self.offsets[i] : self.offsets[i + 1]]))
            for i in range(len(self.offsets) - 1)
        )

    # --- public ---------------------------------------------------------------------------
    def min_cost(self, name: str) -> tuple[float, tuple[int, ...]]:
        """The smallest value of a cost column (or `flops`) any network of the table reaches."""
        if name not in self._min_cost:
            x, _ = self._minimise(self.table.vector(name), {}, ())
            if x is None:
                raise BlockTableError("the block table admits no network (depth rows conflict)")
            choices = self.choices_of(x)
            self._min_cost[name] = (self.table.predict_cost(choices, name), choices)
        return self._min_cost[name]

    def solve(
        self,
        constraints: Mapping[str, float],
        flops_correction: bool = True,
        exclude: Sequence[Sequence[int]] = (),
        max_iterations: int = 100,
    ) -> Solution:
        """The network of highest predicted accuracy under `constraints` (exact).

        Raises:
            InfeasibleConstraintError: when no network meets the constraints.
            BlockTableError: on a constraint the table has no column for.
        """
        t0 = time.perf_counter()
        try:
            return self._solve(constraints, flops_correction, exclude, max_iterations)
        finally:
            self.seconds += time.perf_counter() - t0

    def _solve(
        self,
        constraints: Mapping[str, float],
        flops_correction: bool,
        exclude: Sequence[Sequence[int]],
        max_iterations: int,
    ) -> Solution:
        for name in constraints:
            self.table.base_value(name)
        user = constraints
        lowest, floor = self.min_cost("flops")[0], self.table.min_flops
        if flops_correction and floor is not None and lowest < floor:
            constraints = {**constraints, FLOOR: floor}
        elif flops_correction and lowest <= 0:
            raise BlockTableError(
                "the FLOPs correction needs positive FLOPs, but the table predicts "
                f"{self.min_cost('flops')[0]:g} for {list(self.min_cost('flops')[1])}: its "
                "additive FLOPs model breaks down here (e.g. a resolution scales every layer); "
                "solve without the correction (flops_correction=false), or give the table "
                "min_flops (the smallest real FLOPs of the space) as a floor"
            )
        # normalised FLOPs D(x) = F(x) / F(Ñ) keep the ratio's numbers near 1
        fx = self.flops / self.table.base_flops
        if self._use_dp(constraints, exclude):
            x, optimal, iterations = self._dinkelbach_dp(
                constraints, flops_correction, fx, max_iterations
            )
        else:
            x, optimal, iterations = self._dinkelbach_milp(
                constraints, flops_correction, exclude, fx, max_iterations
            )
        if x is None:
            if not exclude:
                self._raise_infeasible(user, FLOOR in constraints)
            raise InfeasibleConstraintError("no further network meets the constraints")
        choices = self.choices_of(x)
        costs = {
            name: self.table.predict_cost(choices, name) for name in ("flops", *self.table.columns)
        }
        return Solution(
            choices=choices,
            accuracy=self.table.predict_accuracy(choices, flops_correction),
            costs=costs,
            optimal=optimal,
            iterations=iterations,
        )

    def _tol(self, lam: float) -> float:
        return 1e-10 * (float(np.abs(self.drop).sum()) + 1.0) * (1.0 + abs(lam))

    def _dinkelbach_dp(
        self,
        constraints: Mapping[str, float],
        correction: bool,
        fx: np.ndarray,
        max_iterations: int,
    ) -> tuple[np.ndarray | None, bool, int]:
        """Exact by the dynamic program: min Σ b^A x, then Dinkelbach steps for the ratio."""
        x, optimal = self._minimise(self.drop, constraints)
        iterations = 1
        while correction and x is not None and iterations <= max_iterations:
            lam = float(self.drop @ x) / (1.0 + float(fx @ x))
            c = self.drop - lam * fx
            y, _ = self._minimise(c, constraints)
            iterations += 1
            if y is None or float(c @ y) - lam >= -self._tol(lam):
                break
            x = y
        return x, optimal, iterations

    def _dinkelbach_milp(
        self,
        constraints: Mapping[str, float],
        correction: bool,
        exclude: Sequence[Sequence[int]],
        fx: np.ndarray,
        max_iterations: int,
    ) -> tuple[np.ndarray | None, bool, int]:
        """Exact by HiGHS on the reduced program, warm-started from the dynamic program.

        Without the correction one MILP (min Σ b^A x) beats or proves the warm start. With it,
        Dinkelbach starts at λ = the warm start's ratio (or the LP's, Charnes–Cooper, without a
        warm start); each MILP min Σ (b^A − λ b^F) x either finds a network of smaller ratio or
        proves λ optimal, usually at the first.
        """
        a, b = self._rows(constraints, exclude)
        lam = 0.0
        if correction:
            lam_lp = self._lp_ratio(a, b, fx)
            if lam_lp is None:
                return None, True, 0
            lam = lam_lp
        x = None if exclude else self._warm_start(constraints, lam, fx, correction)
        if not correction:
            y, optimal = self._minimise(self.drop, constraints, exclude, x)
            return y, optimal, 1
        iterations, optimal = 0, True
        if x is None:
            x, optimal = self._minimise(self.drop - lam * fx, constraints, exclude)
            iterations = 1
            if x is None:
                return None, True, iterations
        for _ in range(max_iterations):
            lam = float(self.drop @ x) / (1.0 + float(fx @ x))
            c = self.drop - lam * fx
            y, optimal = self._minimise(c, constraints, exclude, x)
            iterations += 1
            if y is None or float(c @ y) - lam >= -self._tol(lam):
                return x, optimal, iterations
            x = y
        return x, False, iterations

    def _raise_infeasible(self, constraints: Mapping[str, float], floored: bool = False) -> None:
        smallest = {name: self.min_cost(name)[0] for name in constraints}
        alone = [
            f"{name} <= {bound:g} cannot be met: the smallest achievable {name} is "
            f"{smallest[name]:g}"
            for name, bound in constraints.items()
            if smallest[name] > bound
        ]
        if alone:
            raise InfeasibleConstraintError("constraint " + "; constraint ".join(alone))
        both = ", ".join(f"{k} <= {v:g}" for k, v in constraints.items())
        each = ", ".join(f"{k} {v:g}" for k, v in smallest.items())
        if floored:
            raise InfeasibleConstraintError(
                f"constraints {both} cannot be met by a network predicted at or above the "
                f"table's min_flops {self.table.min_flops:g} (the floor of the FLOPs "
                f"correction; smallest achievable alone: {each})"
            )
        raise InfeasibleConstraintError(
            f"constraints {both} cannot be met together (smallest achievable alone: {each})"
        )


def _dp_fits(constraints: Mapping[str, float]) -> bool:
    """The exact DP takes at most one ≤ row; the FLOPs floor is a ≥ row, which only the MILP
    takes (also when it is the only row)."""
    return len(constraints) <= 1 and FLOOR not in constraints


def solve_block_table(
    table: BlockTable,
    constraints: Mapping[str, float],
    flops_correction: bool = True,
    time_limit: float | None = None,
    engine: str = "auto",
) -> tuple[list[int], float, dict[str, float]]:
    """Solve a block table alone (no supernet): (choices, predicted accuracy, predicted costs).

    `constraints` are upper bounds on the table's cost columns or `flops`, e.g.
    `{"latency_ms": 20.0}`.
    """
    sol = BlockTableSolver(table, time_limit, engine).solve(constraints, flops_correction)
    return list(sol.choices), sol.accuracy, sol.costs
