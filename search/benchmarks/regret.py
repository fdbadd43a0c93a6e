"""What a table knows that a search does not: its best feasible row, hence a search's regret.

A `TableOracle` is a tabular benchmark seen as arrays (quality, report quality, costs; one
entry per architecture). It checks a problem before the search (every constraint can be met,
every name is a figure of the table) and, after it, compares the search's best validated row
under each constraint with the table's best row under the same constraint:

- `regret`: table best quality − found quality (found − best for a minimised quality), ≥ 0;
- `report_regret`: the same on the report quality (e.g. test accuracy), against the best
  report quality of any feasible row, which need not be the row best on quality.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from rich.table import Table

from search.benchmarks.errors import BenchmarkError
from search.problem import Problem
from search.results import Row, SearchResult
from supernet.space import Arch


@dataclass(frozen=True)
class TableOracle:
    """A tabular benchmark as arrays, for brute-force answers.

    Attributes:
        quality: the searched quality of each entry.
        report: the reported quality of each entry, or None.
        costs: cost name → value of each entry.
        arch_at: entry index → Arch.
        maximise: whether larger quality is better.
        quality_metric, report_metric: the metric names validations give.
        describe: Arch → readable text.
        name: the benchmark, for messages.
    """

    quality: np.ndarray
    report: np.ndarray | None
    costs: Mapping[str, np.ndarray]
    arch_at: Callable[[int], Arch]
    maximise: bool
    quality_metric: str
    report_metric: str
    describe: Callable[[Arch], str]
    name: str

    @property
    def sign(self) -> float:
        return 1.0 if self.maximise else -1.0

    def feasible_mask(self, constraints: Mapping[str, float] | None) -> np.ndarray:
        mask = np.ones(len(self.quality), dtype=bool)
        for metric, bound in (constraints or {}).items():
            mask &= self._cost(metric) <= float(bound)
        return mask

    def best_row(self, constraints: Mapping[str, float] | None = None) -> int:
        """Entry with the best quality under `constraints`; ties: cheaper first cost, then the
        first entry."""
        self.check_constraints(constraints or {})
        idx = np.flatnonzero(self.feasible_mask(constraints))
        first_cost = next(iter(self.costs.values()))
        order = np.lexsort((idx, first_cost[idx], -self.sign * self.quality[idx]))
        return int(idx[order[0]])

    def _cost(self, metric: str) -> np.ndarray:
        try:
            return self.costs[metric]
        except KeyError:
            raise BenchmarkError(
                f"{self.name} has no cost {metric!r}; its costs are {list(self.costs)}"
            ) from None

    # --- before the search --------------------------------------------------------------------
    def check_constraints(
        self, constraints: Mapping[str, float], from_relative: Mapping[str, float] | None = None
    ) -> None:
        """Each bound, and all of them together, must be met by some row. `from_relative` maps
        a bound set by `relative_constraints` to the cost it is a fraction of (the message then
        names the fraction to raise)."""
        for metric, bound in constraints.items():
            values = self._cost(metric)
            cheapest = int(np.argmin(values))
            if values[cheapest] > bound:
                largest = (from_relative or {}).get(metric)
                fix = (f"Raise constraints.{metric} to at least that" if not largest else
                       f"Raise relative_constraints.{metric} to at least "
                       f"{math.ceil(1000 * values[cheapest] / largest) / 1000:g}")
                raise BenchmarkError(
                    f"constraint {metric} ≤ {bound:g} cannot be met: no row of {self.name} is "
                    f"that cheap; the cheapest ({self.describe(self.arch_at(cheapest))}) has "
                    f"{metric} = {values[cheapest]:g}. {fix}"
                )
        if constraints and not self.feasible_mask(constraints).any():
            raise BenchmarkError(
                f"the constraints {dict(constraints)} cannot be met together: each is met by "
                f"some row of {self.name}, but no row meets all; loosen one of them"
            )

    def check(self, problem: Problem) -> None:
        """Names the table does not have, and constraints no row meets: one clear error."""
        known = {self.quality_metric, *self.costs}
        if self.report is not None:
            known.add(self.report_metric)
        unknown = [o for o in problem.objectives if o not in known]
        if unknown:
            raise BenchmarkError(
                f"objectives {unknown} are not figures of {self.name}: its quality is "
                f"{self.quality_metric!r} and its costs are {list(self.costs)}; set e.g. "
                f"objectives=[quality,{next(iter(self.costs))}]"
            )
        self.check_constraints(problem.constraints)

    # --- after the search ---------------------------------------------------------------------
    def _found(self, rows: tuple[Row, ...], constraints: Mapping[str, float]) -> Row | None:
        ok = [r for r in rows if all(r.metrics[m] <= b for m, b in constraints.items())]
        if not ok:
            return None
        return min(ok, key=lambda r: (-self.sign * r.metrics[self.quality_metric], r.index))

    def regret(self, result: SearchResult) -> dict[str, Any]:
        """Per key of `result.best` (each constraint alone, then `all`): the table's best row,
        the search's best row and the regrets (see the module docstring)."""
        q, rq = self.quality_metric, self.report_metric
        out: dict[str, Any] = {}
        for key in result.best:
            bounds = dict(result.constraints) if key == "all" else {
                key: result.constraints[key]}
            best = self.best_row(bounds)
            arch = self.arch_at(best)
            entry: dict[str, Any] = {
                "constraints": bounds,
                "table_best": {"arch_id": arch.arch_id, "arch": self.describe(arch),
                               q: float(self.quality[best])},
                "found": None,
                "regret": None,
            }
            found = self._found(result.rows, bounds)
            if found is not None:
                entry["found"] = {"arch_id": found.arch_id, "arch": self.describe(found.arch),
                                  "index": found.index, q: float(found.metrics[q])}
                entry["regret"] = self.sign * (float(self.quality[best]) - found.metrics[q])
            if self.report is not None:
                mask = self.feasible_mask(bounds)
                feasible = self.report[mask]
                top = float(np.nanmax(feasible) if self.maximise else np.nanmin(feasible))
                entry["table_best"][rq] = float(self.report[best])
                entry["best_" + rq] = top
                entry["report_regret"] = None
                if found is not None and rq in found.metrics:
                    entry["found"][rq] = float(found.metrics[rq])
                    entry["report_regret"] = self.sign * (top - float(found.metrics[rq]))
            out[key] = entry
        return out


def regret_table(regret: Mapping[str, Any], quality: str, report: str | None = None) -> Table:
    """A rich table of `TableOracle.regret` for the console."""
    table = Table(title="Regret against the table (its best feasible row)")
    table.add_column("constraint")
    table.add_column(f"table best {quality}", justify="right")
    table.add_column(f"found {quality}", justify="right")
    table.add_column("regret", justify="right")
    with_report = report is not None and any(("best_" + report) in e for e in regret.values())
    if with_report:
        table.add_column(f"best {report}", justify="right")
        table.add_column(f"found {report}", justify="right")
        table.add_column(f"{report} regret", justify="right")
    table.add_column("table best architecture")

    def fmt(value: Any) -> str:
        return "-" if value is None or not math.isfinite(float(value)) else f"{float(value):.4g}"

    for key, e in regret.items():
        if key == "all" and len(regret) == 2:  # one constraint: "all" repeats its row
            continue
        bounds = e["constraints"]
        name = ", ".join(f"{m} ≤ {b:.4g}" for m, b in bounds.items()) or "none"
        name = f"all: {name}" if key == "all" and bounds else name
        found = e["found"] or {}
        cells = [name, fmt(e["table_best"][quality]), fmt(found.get(quality)), fmt(e["regret"])]
        if with_report:
            assert report is not None
            cells += [fmt(e.get("best_" + report)), fmt(found.get(report)),
                      fmt(e.get("report_regret"))]
        table.add_row(*cells, e["table_best"]["arch"])
    return table
