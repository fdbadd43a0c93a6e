"""The search problem: a space, objectives, constraints, and a counted budget of validations.

Strategies only talk to a `Problem`. A *validation* (accuracy, BLEU, loss: what needs the
supernet and data) is counted against the budget; a *cost* (MACs, params, measured or
table latency) is not, following the papers' accounting. Both are cached by the problem's
`measure` functions (usually a `Store`), so nothing is measured twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from supernet.errors import NASError
from supernet.space import Arch, SearchSpace

# metric name → True when larger is better; the ideal value bounds the normalised hypervolume
METRICS: dict[str, tuple[bool, float]] = {
    "accuracy": (True, 100.0),
    "bleu": (True, 100.0),
    "loss": (False, 0.0),
    "latency_ms": (False, 0.0),
    "cpu_time_ms": (False, 0.0),
    "macs": (False, 0.0),
    "params": (False, 0.0),
    "energy_mj": (False, 0.0),
}


class ProblemError(NASError, ValueError):
    """A problem that cannot be searched as configured (unknown objective, bad budget...)."""


class BudgetExhausted(RuntimeError):
    """Raised when a strategy asks for more new validations than the budget has left."""


@dataclass(frozen=True)
class Measurement:
    """Named figures of one architecture: quality metrics and costs, plus how they were made."""

    metrics: Mapping[str, float]
    info: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> float:
        try:
            return float(self.metrics[name])
        except KeyError:
            raise ProblemError(
                f"no metric {name!r} was measured; available: {sorted(self.metrics)}"
            ) from None


@dataclass(frozen=True)
class Evaluation:
    """One row of a search's history: the n-th validation, its arch and its figures."""

    index: int
    arch: Arch
    measurement: Measurement


Validate = Callable[[Sequence[Arch]], Sequence[Mapping[str, float]]]
Cost = Callable[[Arch], Mapping[str, float]]


def metric_sense(name: str) -> tuple[bool, float]:
    """(maximise?, ideal value) of a metric, with a clear error for unknown names."""
    try:
        return METRICS[name]
    except KeyError:
        raise ProblemError(f"unknown objective {name!r}; choose from {sorted(METRICS)}") from None


class Problem:
    """Space + objectives + constraints, pymoo style: objectives minimised, feasible when G ≤ 0.

    Args:
        space: the search space.
        objectives: metric names, e.g. `("accuracy", "latency_ms")`.
        constraints: upper bounds on cost metrics, e.g. `{"macs": 150e6}`.
        validate: measures quality metrics of a batch of archs (counted against the budget).
        cost: cost metrics of one arch (not counted).
        budget: number of validations allowed.
        reference: hypervolume reference point per objective, in the metric's own units
            (default: 0 for maximised metrics, the largest arch's cost for costs).
        analytic_cost: the costs that are free to compute (MACs, parameters), when `cost`
            also measures expensive ones (latency); None: every cost of `cost` is cheap.
    """

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[str],
        constraints: Mapping[str, float] | None,
        validate: Validate,
        cost: Cost,
        budget: int,
        reference: Mapping[str, float] | None = None,
        analytic_cost: Cost | None = None,
    ) -> None:
        if budget <= 0:
            raise ProblemError(f"budget must be a positive number of validations, got {budget}")
        if len(objectives) < 1:
            raise ProblemError("at least one objective is needed")
        for name in list(objectives) + list(constraints or {}):
            metric_sense(name)
        self.space = space
        self.objectives = tuple(objectives)
        self.constraints = {k: float(v) for k, v in (constraints or {}).items() if v is not None}
        self.budget = int(budget)
        self._validate = validate
        self._cost = cost
        self._analytic_cost = analytic_cost
        self._analytic_cache: dict[str, dict[str, float]] = {}
        self.history: list[Evaluation] = []
        self._seen: dict[str, Evaluation] = {}
        # validations kept out of the result (e.g. subnets that only score a predictor):
        # they cost budget but are never in the front or the best rows
        self.held_out: list[Evaluation] = []
        self._held_out_seen: dict[str, Evaluation] = {}
        self._cost_cache: dict[str, dict[str, float]] = {}
        self.callbacks: list[Callable[[Evaluation], None]] = []
        self._reference = dict(reference or {})

    # --- budget --------------------------------------------------------------------------
    @property
    def used(self) -> int:
        """Validations spent: the history plus held-out ones not (yet) in the history."""
        return len(self.history) + sum(1 for k in self._held_out_seen if k not in self._seen)

    @property
    def remaining(self) -> int:
        return self.budget - self.used

    def seen(self, arch: Arch) -> bool:
        return arch.arch_id in self._seen

    def _measured(self, arch_id: str) -> bool:
        return arch_id in self._seen or arch_id in self._held_out_seen

    def affordable(self, archs: Sequence[Arch]) -> list[Arch]:
        """The archs not yet in the history, without repeats, trimmed to the remaining budget
        (held-out ones are free to add: they were paid for)."""
        fresh: dict[str, Arch] = {}
        for a in archs:
            if a.arch_id not in self._seen and a.arch_id not in fresh:
                fresh[a.arch_id] = a
        paid = [a for a in fresh.values() if a.arch_id in self._held_out_seen]
        unpaid = [a for a in fresh.values() if a.arch_id not in self._held_out_seen]
        return paid + unpaid[: max(self.remaining, 0)]

    # --- measuring ---------------------------------------------------------------------------
    def cost(self, arch: Arch) -> dict[str, float]:
        """Cost metrics of `arch` (cached; never counted against the budget)."""
        if arch.arch_id not in self._cost_cache:
            self._cost_cache[arch.arch_id] = {k: float(v) for k, v in self._cost(arch).items()}
        return self._cost_cache[arch.arch_id]

    def analytic_cost(self, arch: Arch) -> dict[str, float]:
        """The free costs of `arch` (all of `cost` when no analytic part was given)."""
        if self._analytic_cost is None:
            return self.cost(arch)
        if arch.arch_id not in self._analytic_cache:
            self._analytic_cache[arch.arch_id] = {
                k: float(v) for k, v in self._analytic_cost(arch).items()}
        return self._analytic_cache[arch.arch_id]

    def evaluate(self, archs: Sequence[Arch]) -> list[Measurement]:
        """Validate `archs` (cost included); already validated archs are not counted again.

        Raises:
            BudgetExhausted: when the new archs among `archs` exceed the remaining budget.
        """
        new = self.affordable(archs)
        n_new = len({a.arch_id for a in archs if a.arch_id not in self._seen})
        if n_new > len(new):
            raise BudgetExhausted(f"{n_new} new validations asked for, {self.remaining} left")
        measured = self._measure([a for a in new if a.arch_id not in self._held_out_seen])
        for arch in new:
            held = self._held_out_seen.get(arch.arch_id)
            measurement = held.measurement if held is not None else measured[arch.arch_id]
            ev = Evaluation(len(self.history), arch, measurement)
            self.history.append(ev)
            self._seen[arch.arch_id] = ev
            for cb in self.callbacks:
                cb(ev)
        return [self._seen[a.arch_id].measurement for a in archs]

    def evaluate_held_out(self, archs: Sequence[Arch]) -> list[Measurement]:
        """Validate `archs` outside the result: counted against the budget, but never in the
        history, the front or the best rows (a strategy's own checks, e.g. of a predictor).

        Raises:
            BudgetExhausted: when the new archs among `archs` exceed the remaining budget.
        """
        fresh: dict[str, Arch] = {a.arch_id: a for a in archs if not self._measured(a.arch_id)}
        if len(fresh) > self.remaining:
            raise BudgetExhausted(f"{len(fresh)} new validations asked for, "
                                  f"{self.remaining} left")
        measured = self._measure(list(fresh.values()))
        for arch in fresh.values():
            ev = Evaluation(len(self.held_out), arch, measured[arch.arch_id])
            self.held_out.append(ev)
            self._held_out_seen[arch.arch_id] = ev
        return [(self._seen.get(a.arch_id) or self._held_out_seen[a.arch_id]).measurement
                for a in archs]

    def _measure(self, archs: Sequence[Arch]) -> dict[str, Measurement]:
        if not archs:
            return {}
        quality = self._validate(archs)
        return {
            arch.arch_id: Measurement({**self.cost(arch), **{k: float(v) for k, v in q.items()}})
            for arch, q in zip(archs, quality, strict=True)
        }

    # --- pymoo view -------------------------------------------------------------------------
    def F(self, metrics: Mapping[str, float] | Measurement) -> np.ndarray:
        """Objective vector, every objective minimised (maximised metrics negated)."""
        get = metrics.__getitem__
        return np.array(
            [-get(o) if metric_sense(o)[0] else get(o) for o in self.objectives], dtype=float
        )

    def G(self, metrics: Mapping[str, float] | Measurement) -> np.ndarray:
        """Constraint vector, feasible when every entry ≤ 0."""
        get = metrics.__getitem__
        return np.array([get(k) - b for k, b in self.constraints.items()], dtype=float)

    def feasible(self, metrics: Mapping[str, float] | Measurement) -> bool:
        return bool(np.all(self.G(metrics) <= 0))

    def cost_feasible(self, arch: Arch) -> bool:
        """Feasibility from costs alone (constraints are on costs), without a validation."""
        return self.feasible(self.cost(arch))

    def reference_point(self) -> np.ndarray:
        """Hypervolume reference in minimised units (see the class docstring)."""
        ref = []
        largest_cost: dict[str, float] | None = None
        for o in self.objectives:
            maximise, ideal = metric_sense(o)
            if o in self._reference:
                value = float(self._reference[o])
            elif maximise:
                value = 0.0
            else:
                if largest_cost is None:
                    largest_cost = self.cost(self.space.largest())
                value = largest_cost.get(o, np.inf)
            ref.append(-value if maximise else value)
        return np.array(ref)

    def ideal_point(self) -> np.ndarray:
        return np.array(
            [
                -metric_sense(o)[1] if metric_sense(o)[0] else metric_sense(o)[1]
                for o in self.objectives
            ]
        )
