"""A tabular benchmark: a search space whose validations are table look-ups.

It is one more space plus an evaluator, so every strategy runs on it unchanged:

    bench = load_benchmark("nats_sss", dataset="cifar10")  # the bundled table
    problem = Problem(space=bench.space, objectives=("accuracy", "macs"),
                      constraints=bench.relative({"macs": 0.5}), validate=bench.validate,
                      cost=bench.cost, budget=400)

The Problem counts validations and skips archs it has seen (by `arch_id`; isomorphic
NAS-Bench-201 cells share one canonical Arch), so a repeated look-up is never counted twice.
Regret is measured against `best_feasible`, a brute-force scan of the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from search.benchmarks.errors import BenchmarkError
from search.benchmarks.table import (
    TableSpace,
    check_complete,
    infer_space,
    keyed_rows,
    rows_for,
)
from search.problem import Problem
from supernet.space import Arch, SpaceError

COST_METRICS = ("macs", "params")


class TabularBenchmark:
    """Look-up evaluator and cost model of one dataset of a table.

    In a canonical NAS-Bench-201 space an Arch is a class of isomorphic cells; its accuracy
    and costs are the row of its representative (the other members' rows stay in `table`).

    Args:
        space: the benchmark's space (`NatsSizeSpace` or `NB201Space`).
        rows: the dataset's rows in the compact format (see `search.benchmarks.table`).
        dataset: dataset name, for messages and reports.
        info: provenance (source files, which column is "validation"), for reports.
    """

    def __init__(
        self,
        space: TableSpace,
        rows: pd.DataFrame,
        dataset: str,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        self.space = space
        self.dataset = dataset
        self.info = dict(info or {})
        keyed = keyed_rows(rows, space)
        self.strings = check_complete(keyed, space)
        #: every row of the dataset, indexed by normalised arch string (isomorphs included)
        self.table = keyed
        entries = keyed.loc[self.strings]
        self._index = {s: i for i, s in enumerate(self.strings)}
        self.val_acc = entries["val_acc"].to_numpy(dtype=float)
        self.test_acc = entries["test_acc"].to_numpy(dtype=float)
        self.macs = entries["flops_M"].to_numpy(dtype=float) * 1e6
        self.params = entries["params_M"].to_numpy(dtype=float) * 1e6
        self.lookups = 0

    @classmethod
    def from_table(
        cls,
        df: pd.DataFrame,
        dataset: str,
        space: TableSpace | None = None,
        canonical: bool = True,
        info: Mapping[str, Any] | None = None,
    ) -> TabularBenchmark:
        """Benchmark of one dataset of a compact table; the space is inferred if not given."""
        rows = rows_for(df, dataset)
        space = space if space is not None else infer_space(rows["arch"], canonical=canonical)
        return cls(space, rows, rows["dataset"].iloc[0], info)

    def __repr__(self) -> str:
        return (
            f"TabularBenchmark({self.space.name}, {self.dataset}, {len(self)} networks, "
            f"{int(self.lookups)} look-ups)"
        )

    def __len__(self) -> int:
        return len(self.strings)

    # --- look-ups ---------------------------------------------------------------------------
    def row(self, arch: Mapping[str, Any] | str) -> int:
        """Position of `arch` (an Arch or an arch string) among the entries."""
        if isinstance(arch, str):
            arch = self.space.parse(arch)
        key = self.space.to_string(arch)
        if key not in self._index:  # a hand-made, non-canonical Arch: canonicalise it
            try:
                key = self.space.to_string(self.space.arch(dict(arch)))
            except SpaceError as err:
                raise BenchmarkError(
                    f"{key!r} is outside the {self.space.name} space of this table: {err}"
                ) from None
        try:
            return self._index[key]
        except KeyError:
            raise BenchmarkError(
                f"{key!r} has no entry in the {self.space.name} table for {self.dataset}; "
                f"build archs with benchmark.space (arch, parse, sample)"
            ) from None

    def validate(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        """Validation accuracy (percent) of each arch: the figure a strategy searches on."""
        out = [{"accuracy": float(self.val_acc[self.row(a)])} for a in archs]
        self.lookups += len(out)
        return out

    def cost(self, arch: Arch) -> dict[str, float]:
        """MACs (= table FLOPs × 1e6) and parameters of `arch`; free, never counted."""
        i = self.row(arch)
        return {"macs": float(self.macs[i]), "params": float(self.params[i])}

    def test_accuracy(self, arch: Arch | str) -> float:
        """Test accuracy (percent) for reports; an error when the table has none."""
        value = float(self.test_acc[self.row(arch)])
        if np.isnan(value):
            raise BenchmarkError(
                f"the {self.space.name} table for {self.dataset} has no test accuracy "
                f"(column 'test_acc'); compare by validation regret instead"
            )
        return value

    @property
    def has_test_accuracy(self) -> bool:
        return bool(np.isfinite(self.test_acc).all())

    # --- brute force over the table -------------------------------------------------------
    def _cost_array(self, metric: str) -> np.ndarray:
        if metric == "macs":
            return self.macs
        if metric == "params":
            return self.params
        raise BenchmarkError(
            f"the table has no cost metric {metric!r}; constrain one of {list(COST_METRICS)}"
        )

    def feasible_mask(self, constraints: Mapping[str, float] | None) -> np.ndarray:
        mask = np.ones(len(self), dtype=bool)
        for metric, bound in (constraints or {}).items():
            if bound is not None:
                mask &= self._cost_array(metric) <= float(bound)
        return mask

    def best_feasible(self, constraints: Mapping[str, float] | None = None) -> tuple[Arch, float]:
        """The arch with the best validation accuracy under `constraints`, and that accuracy.

        Ties go to the cheaper network (fewer MACs), then to the first entry.
        """
        mask = self.feasible_mask(constraints)
        if not mask.any():
            lows = {m: self._cost_array(m).min() for m in (constraints or {})}
            raise BenchmarkError(
                f"no network of the {self.space.name} table meets {dict(constraints or {})}; "
                f"the smallest values are {lows}: loosen the constraint"
            )
        idx = np.flatnonzero(mask)
        order = np.lexsort((self.macs[idx], -self.val_acc[idx]))
        best = int(idx[order[0]])
        return self.space.parse(self.strings[best]), float(self.val_acc[best])

    def max_cost(self, metric: str) -> float:
        """Largest value of a cost metric over the table (the largest network's, usually)."""
        return float(self._cost_array(metric).max())

    def relative(self, fractions: Mapping[str, float]) -> dict[str, float]:
        """`{"macs": 0.5}` → `{"macs": 0.5 × max MACs}`: constraints as fractions of the largest."""
        return {m: float(f) * self.max_cost(m) for m, f in fractions.items()}

    def entries(self) -> pd.DataFrame:
        """One row per network of the space: arch string, val/test accuracy, macs, params."""
        return pd.DataFrame(
            {
                "arch": self.strings,
                "val_acc": self.val_acc,
                "test_acc": self.test_acc,
                "macs": self.macs,
                "params": self.params,
            }
        )

    def archs(self, strings: Iterable[str] | None = None) -> list[Arch]:
        """Archs of the given strings (default: every network of the space)."""
        return [self.space.parse(s) for s in (self.strings if strings is None else strings)]

    def problem(
        self,
        objectives: Sequence[str] = ("accuracy", "macs"),
        constraints: Mapping[str, float] | None = None,
        budget: int = 100,
    ) -> Problem:
        """A Problem on this benchmark (constraints in absolute units, see `relative`)."""
        return Problem(
            space=self.space,
            objectives=objectives,
            constraints=constraints,
            validate=self.validate,
            cost=self.cost,
            budget=budget,
        )
