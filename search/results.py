"""The frozen outcome of a search, built from the problem's history alone.

Every strategy ends the same way: `SearchResult.from_problem(problem, ...)`. So the exact
non-dominated set, the hypervolume curve and the best arch per constraint are computed one
way for all strategies, over validated rows only (a prediction is never a result).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from search.problem import Problem, metric_sense
from supernet.space import Arch

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Row:
    """One validation: its position in the history, the arch and every measured metric."""

    index: int
    arch: Arch
    metrics: Mapping[str, float]
    feasible: bool

    @property
    def arch_id(self) -> str:
        return self.arch.arch_id


def non_dominated(F: np.ndarray) -> np.ndarray:
    """Indices of the exact first non-dominated front of minimised objectives `F`."""
    if len(F) == 0:
        return np.zeros(0, dtype=np.int64)
    front = NonDominatedSorting().do(np.asarray(F, dtype=float), only_non_dominated_front=True)
    return np.sort(np.asarray(front, dtype=np.int64))


def hypervolume_curve(F: np.ndarray, feasible: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Hypervolume of the feasible rows among the first k, for k = 1..n (non-decreasing).

    The front is kept incrementally: the hypervolume is recomputed only when a feasible
    row is not dominated by the current front.
    """
    indicator = HV(ref_point=np.asarray(reference, dtype=float))
    curve = np.zeros(len(F))
    front = np.zeros((0, F.shape[1] if F.ndim == 2 else len(reference)))
    value = 0.0
    for k in range(len(F)):
        if feasible[k]:
            f = F[k]
            dominated = np.any(np.all(front <= f, axis=1) & np.any(front < f, axis=1))
            if not dominated:
                front = np.vstack([front, f])
                front = front[non_dominated(front)]
                value = float(indicator(front))
        curve[k] = value
    return curve


@dataclass(frozen=True)
class SearchResult:
    """Every validated arch, the exact Pareto set, the hypervolume curve, best per constraint.

    Attributes:
        rows: every validation in history order.
        held_out: validations a strategy kept out of the result (e.g. to score its predictor):
            they used budget but are in no front, curve or best row.
        pareto: the non-dominated feasible rows (exact, by objectives; ties all kept).
        hypervolume: hypervolume of the feasible front after each validation.
        hypervolume_normalised: the same divided by the volume of the box between the
            ideal point (100 % accuracy, zero cost) and the reference point.
        best: per constraint name, the feasible row (for that constraint alone) with the
            best first objective; key `"all"` uses every constraint together (with no
            constraints it is the best row overall). `None` when no row qualifies.
    """

    strategy: str
    seed: int
    objectives: tuple[str, ...]
    constraints: Mapping[str, float]
    reference_point: tuple[float, ...]
    ideal_point: tuple[float, ...]
    rows: tuple[Row, ...]
    pareto: tuple[Row, ...]
    hypervolume: tuple[float, ...]
    hypervolume_normalised: tuple[float, ...]
    best: Mapping[str, Row | None]
    extras: Mapping[str, Any] = field(default_factory=dict)
    held_out: tuple[Row, ...] = ()  # validations kept out of the front and the best rows

    @classmethod
    def from_problem(
        cls, problem: Problem, strategy: str, seed: int, extras: Mapping[str, Any] | None = None
    ) -> SearchResult:
        """Freeze `problem.history` into a result."""
        rows = tuple(
            Row(
                index=ev.index,
                arch=ev.arch,
                metrics=dict(ev.measurement.metrics),
                feasible=problem.feasible(ev.measurement),
            )
            for ev in problem.history
        )
        n_obj = len(problem.objectives)
        F = np.array([problem.F(r.metrics) for r in rows], dtype=float).reshape(len(rows), n_obj)
        feasible = np.array([r.feasible for r in rows], dtype=bool)
        ref = problem.reference_point().astype(float)
        ideal = problem.ideal_point().astype(float)

        feasible_idx = np.flatnonzero(feasible)
        pareto = tuple(rows[i] for i in feasible_idx[non_dominated(F[feasible_idx])])

        curve = hypervolume_curve(F, feasible, ref)
        box = float(np.prod(ref - ideal))
        normalised = curve / box if box > 0 and np.isfinite(box) else np.full_like(curve, np.nan)

        first = problem.objectives[0]
        sign = -1.0 if metric_sense(first)[0] else 1.0

        def best_of(candidates: list[Row]) -> Row | None:
            if not candidates:
                return None
            return min(candidates, key=lambda r: (sign * r.metrics[first], r.index))

        best: dict[str, Row | None] = {}
        for name, bound in problem.constraints.items():
            best[name] = best_of([r for r in rows if r.metrics[name] <= bound])
        best["all"] = best_of([r for r in rows if r.feasible])

        return cls(
            strategy=strategy,
            seed=int(seed),
            objectives=problem.objectives,
            constraints=dict(problem.constraints),
            reference_point=tuple(float(v) for v in ref),
            ideal_point=tuple(float(v) for v in ideal),
            rows=rows,
            pareto=pareto,
            hypervolume=tuple(float(v) for v in curve),
            hypervolume_normalised=tuple(float(v) for v in normalised),
            best=best,
            extras=dict(extras or {}),
            held_out=tuple(
                Row(index=ev.index, arch=ev.arch, metrics=dict(ev.measurement.metrics),
                    feasible=problem.feasible(ev.measurement))
                for ev in problem.held_out
            ),
        )

    # --- views ---------------------------------------------------------------------------
    @property
    def metric_names(self) -> tuple[str, ...]:
        """Objectives first, then every other measured metric in sorted order."""
        others = sorted({k for r in self.rows for k in r.metrics} - set(self.objectives))
        return self.objectives + tuple(others)

    def objective_matrix(self, rows: tuple[Row, ...] | None = None) -> np.ndarray:
        """Objectives of `rows` (default: all) in their own units (not negated)."""
        rows = self.rows if rows is None else rows
        return np.array([[r.metrics[o] for o in self.objectives] for r in rows], dtype=float)

    def validations_to_reach(self, normalised_hv: float) -> int | None:
        """Number of validations after which the normalised hypervolume first reaches a level."""
        for k, v in enumerate(self.hypervolume_normalised):
            if v >= normalised_hv:
                return k + 1
        return None

    def to_frame(self) -> pd.DataFrame:
        """One row per validation: arch_id, arch (JSON), metrics, feasible, pareto, run keys."""
        import pandas as pd

        pareto_ids = {r.index for r in self.pareto}
        records = []
        for k, r in enumerate(self.rows):
            record: dict[str, Any] = {
                "arch_id": r.arch_id,
                "arch": json.dumps(r.arch.to_dict(), sort_keys=True),
            }
            for name in self.metric_names:
                record[name] = r.metrics.get(name, np.nan)
            record.update(
                feasible=r.feasible,
                pareto=r.index in pareto_ids,
                hypervolume=self.hypervolume[k],
                strategy=self.strategy,
                seed=self.seed,
                index=r.index,
            )
            records.append(record)
        columns = ["arch_id", "arch", *self.metric_names, "feasible", "pareto", "hypervolume"]
        columns += ["strategy", "seed", "index"]
        return pd.DataFrame.from_records(records, columns=columns)

    def held_out_frame(self) -> pd.DataFrame:
        """The held-out validations: arch_id, arch (JSON), metrics, feasible, run keys."""
        import pandas as pd

        names = sorted({k for r in self.held_out for k in r.metrics})
        records = [
            {"arch_id": r.arch_id, "arch": json.dumps(r.arch.to_dict(), sort_keys=True),
             **{n: r.metrics.get(n, np.nan) for n in names}, "feasible": r.feasible,
             "strategy": self.strategy, "seed": self.seed, "index": r.index}
            for r in self.held_out
        ]
        columns = ["arch_id", "arch", *names, "feasible", "strategy", "seed", "index"]
        return pd.DataFrame.from_records(records, columns=columns)
