"""MathNAS helpers: rank every predicted network of a small table, and refit a table on data.

`RankedTable` predicts all networks of a table at once (numpy), so the k best under a
constraint are a sort instead of k integer programs with exclusion cuts; it applies when the
space is small (NAS-Bench-201 has 15,625 cells) and gives the same networks as the exact
solver, up to ties.

`refit_table` updates a measured table with the networks validated so far: ridge regression of
the predictor's own form, Acc(N) = Acc(Ñ) − s(N) · Σ b^A (s = F̄ / F(N) with the FLOPs
correction, else 1), pulled towards the measured values (the prior) with weight `ridge`. The
block measurements stay the starting point; every validation of a pick corrects the drops of
the blocks it contains.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np

from search.mathnas.solve import Solution
from search.mathnas.table import BlockTable, BlockTableError
from supernet.errors import ConfigError


def _valid_choices(table: BlockTable) -> np.ndarray:
    """Every choice vector that respects monotone depth (once absent, later nodes absent)."""
    depth = tuple((n.depth_label, n.absent) for n in table.nodes)
    return _grid(tuple(table.num_options), depth)


@functools.lru_cache(maxsize=8)
def _grid(sizes: tuple[int, ...], depth: tuple[tuple[str | None, int | None], ...]) -> np.ndarray:
    grid = np.array(list(itertools.product(*[range(n) for n in sizes])), dtype=int)
    ok = np.ones(len(grid), dtype=bool)
    last: dict[str, int] = {}
    for i, (label, absent) in enumerate(depth):
        if label is not None:
            if label in last:
                prev = depth[last[label]][1]
                ok &= ~((grid[:, last[label]] == prev) & (grid[:, i] != absent))
            last[label] = i
    out = grid[ok]
    out.setflags(write=False)
    return out


class RankedTable:
    """Predicted accuracy and costs of every network of `table`, for exact top-k by sorting."""

    def __init__(self, table: BlockTable, flops_correction: bool) -> None:
        self.table = table
        self.correction = flops_correction
        self.choices = _valid_choices(table)
        offsets = np.concatenate([[0], np.cumsum(table.num_options)[:-1]]).astype(int)
        self._cols = self.choices + offsets  # column of each picked option in `vector`
        self._costs: dict[str, np.ndarray] = {}
        self.flops = self.cost("flops")
        drop = table.vector("acc_drop")[self._cols].sum(axis=1)
        if flops_correction:
            if self.flops.min() <= 0:
                raise BlockTableError(
                    f"predicted FLOPs {self.flops.min():g} are not positive; solve without the "
                    "FLOPs correction"
                )
            self.accuracy = table.base_accuracy - drop * table.mean_flops / self.flops
        else:
            self.accuracy = table.base_accuracy - drop
        self.order = np.argsort(-self.accuracy, kind="stable")

    @staticmethod
    def size(table: BlockTable) -> int:
        """Number of option combinations (an upper bound of the networks)."""
        return math.prod(table.num_options)

    def cost(self, name: str) -> np.ndarray:
        if name not in self._costs:
            vec = self.table.vector(name)
            self._costs[name] = self.table.base_value(name) + vec[self._cols].sum(axis=1)
        return self._costs[name]

    def best(
        self,
        bounds: Mapping[str, float],
        exclude: set[tuple[int, ...]],
        start: int = 0,
    ) -> tuple[Solution | None, int]:
        """The best predicted network meeting `bounds` (predicted costs), not in `exclude`,
        scanning the ranking from position `start`; also returns where the scan stopped."""
        ok = np.ones(len(self.choices), dtype=bool)
        for name, bound in bounds.items():
            ok &= self.cost(name) <= bound + 1e-9 * max(1.0, abs(bound))
        for pos in range(start, len(self.order)):
            k = int(self.order[pos])
            if not ok[k]:
                continue
            choices = tuple(int(v) for v in self.choices[k])
            if choices in exclude:
                continue
            costs = {n: float(self.cost(n)[k]) for n in ("flops", *self.table.columns)}
            return Solution(choices, float(self.accuracy[k]), costs), pos + 1
        return None, len(self.order)


def refit_table(
    table: BlockTable,
    observed: Sequence[tuple[Sequence[int], float]],
    flops_correction: bool,
    ridge: float,
) -> BlockTable:
    """The table whose Acc(Ñ) and drops best fit `observed` (choices, score), ridge towards
    the measured ones. Reference options keep a drop of 0 (they define the deltas)."""
    if ridge <= 0:
        raise ConfigError(f"ridge must be positive, got {ridge}")
    free = [
        (i, j)
        for i, node in enumerate(table.nodes)
        for j in range(len(node.options))
        if j != node.reference
    ]
    col = {ij: 1 + k for k, ij in enumerate(free)}
    theta0 = np.array(
        [table.base_accuracy, *[table.nodes[i].options[j].acc_drop for i, j in free]]
    )
    rows, ys = [], []
    for choices, score in observed:
        scale = 1.0
        if flops_correction:
            flops = table.predict_cost(choices, "flops")
            if flops <= 0:
                continue
            scale = table.mean_flops / flops
        row = np.zeros(len(theta0))
        row[0] = 1.0
        for i, j in enumerate(choices):
            if (i, int(j)) in col:
                row[col[i, int(j)]] = -scale
        rows.append(row)
        ys.append(float(score))
    if not rows:
        return table
    x, y = np.array(rows), np.array(ys)
    lhs = x.T @ x + ridge * np.eye(len(theta0))
    theta = np.linalg.solve(lhs, x.T @ y + ridge * theta0)
    nodes = []
    for i, node in enumerate(table.nodes):
        options = tuple(
            o if j == node.reference else dataclasses.replace(o, acc_drop=float(theta[col[i, j]]))
            for j, o in enumerate(node.options)
        )
        nodes.append(dataclasses.replace(node, options=options))
    meta = {**table.meta, "refit_networks": len(rows), "refit_ridge": ridge}
    return dataclasses.replace(
        table, base_accuracy=float(theta[0]), nodes=tuple(nodes), meta=meta
    )
