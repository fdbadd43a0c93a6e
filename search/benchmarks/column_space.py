"""The search space of a table with one column per decision, complete or not.

Each decision column is one decision and one layer node (what MathNAS and LayerNAS search);
its options are the column's distinct values, small → large. The architectures that exist are
the table's rows. When the table holds every combination of options the space behaves like any
`SearchSpace`. When it does not (an *incomplete* table: a sweep that skipped networks, a
benchmark that lists only trained ones), every way a strategy makes an architecture stays on
rows that exist:

- `sample` draws a row uniformly;
- `mutate` (one gene) picks uniformly among the rows one gene away, or the nearest row when
  there is none;
- `arch`, `decode` and `crossover` (and, through `repair_genes`, the gene matrices NSGA-II and
  LINAS work on) repair a missing combination to the *nearest present row*: fewest differing
  decisions, then smallest total distance in option positions, then the first row in option
  order;
- `compose` (MathNAS, LayerNAS: any combination of node options) refuses, naming the missing
  combinations, since their block models need every one of them.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from search.benchmarks.errors import BenchmarkError
from search.benchmarks.spaces import _ArchCache, _memo_arch
from supernet.space import Arch, Decision, SearchSpace

SHOWN_MISSING = 3  # missing combinations named in a message


class ColumnSpace(SearchSpace):
    """Decisions from table columns; the architectures that exist are the table's rows.

    Args:
        name: the space's name (stores, reports).
        decisions: one decision per column, options small → large.
        genes: the present rows as option indices, one distinct row per architecture.
    """

    def __init__(self, name: str, decisions: Sequence[Decision], genes: np.ndarray) -> None:
        super().__init__(name=name, decisions=decisions)
        genes = np.asarray(genes, dtype=np.int64).reshape(-1, len(self.decisions))
        if len(genes) == 0:
            raise BenchmarkError(f"table {name!r} has no rows")
        self.genes = genes
        self._row = {row.tobytes(): i for i, row in enumerate(genes)}
        if len(self._row) != len(genes):
            raise BenchmarkError(f"table {name!r} repeats an architecture; average repeats first")
        self.combinations = int(np.prod(self.num_options.astype(object)))
        self.complete = len(genes) == self.combinations
        self._arch_cache = _ArchCache()
        self._nearest: dict[tuple[bytes, int | None], int] = {}  # memo of `nearest`

    # --- rows ---------------------------------------------------------------------------------
    def row_of(self, genes: np.ndarray) -> int | None:
        """Row index of one gene vector, None when the table has no such row."""
        return self._row.get(np.ascontiguousarray(genes, dtype=np.int64).tobytes())

    def nearest(self, genes: np.ndarray, exclude: int | None = None) -> int:
        """Index of the present row nearest to a gene vector (see the module docstring)."""
        genes = np.asarray(genes, dtype=np.int64)
        key = (genes.tobytes(), exclude)
        hit = self._nearest.get(key)
        if hit is None:
            hit = self._nearest[key] = self._one_gene_away(genes, exclude)
            if hit < 0:
                hit = self._nearest[key] = self._scan(genes, exclude)
        return hit

    def _one_gene_away(self, genes: np.ndarray, exclude: int | None) -> int:
        """The nearest row one gene away by dictionary look-ups (-1 when there is none); the
        same answer as `_scan`, found without reading the whole table."""
        best = (np.iinfo(np.int64).max, -1)
        for i, n in enumerate(self.num_options):
            for option in range(int(n)):
                if option == genes[i]:
                    continue
                other = genes.copy()
                other[i] = option
                row = self.row_of(other)
                if row is not None and row != exclude:
                    best = min(best, (abs(option - int(genes[i])), row))
        return best[1]

    def _scan(self, genes: np.ndarray, exclude: int | None) -> int:
        diff = self.genes - genes
        hamming = np.count_nonzero(diff, axis=1)
        distance = hamming * (int(self.num_options.sum()) + 1) + np.abs(diff).sum(axis=1)
        if exclude is not None:
            distance[exclude] = np.iinfo(np.int64).max
        return int(np.argmin(distance))

    def repair_genes(self, genes: np.ndarray) -> np.ndarray:
        """Canonical gene matrix → the same with missing combinations replaced by their nearest
        present rows (what pymoo's populations are repaired with)."""
        if self.complete:
            return genes
        out = np.array(genes, dtype=np.int64, copy=True)
        for i, row in enumerate(out):
            if row.tobytes() not in self._row:
                out[i] = self.genes[self.nearest(row)]
        return out

    def arch_of_row(self, row: int) -> Arch:
        """The Arch of a present row."""
        return self.decode(self.genes[row])

    def missing(self, limit: int = SHOWN_MISSING) -> tuple[int, list[dict[str, Any]]]:
        """How many combinations have no row, and the first `limit` of them in option order."""
        count = self.combinations - len(self.genes)
        first: list[dict[str, Any]] = []
        if count:
            ranges = [range(int(n)) for n in self.num_options]
            for combo in itertools.product(*ranges):  # at most rows + limit steps
                if np.array(combo, dtype=np.int64).tobytes() not in self._row:
                    first.append(
                        {d.label: d.options[i] for d, i in zip(self.decisions, combo, strict=True)}
                    )
                    if len(first) == limit:
                        break
        return count, first

    def missing_message(self) -> str:
        count, first = self.missing()
        shown = "; ".join(", ".join(f"{k}={v}" for k, v in c.items()) for c in first)
        more = f" and {count - len(first)} more" if count > len(first) else ""
        return (
            f"table {self.name!r} lacks {count} of the {self.combinations} combinations of its "
            f"decisions {list(self.labels)}: {shown}{more}. MathNAS and LayerNAS combine the "
            f"options of every layer freely and need every combination: add those rows, or use "
            f"strategy=random, evolution, nsga2 or linas, which stay on the rows that exist"
        )

    # --- architectures ------------------------------------------------------------------------
    def arch(self, values: Mapping[str, Any]) -> Arch:
        """Validated Arch; a combination the table lacks becomes its nearest present row."""
        return _memo_arch(self, self._arch_cache, values, self._arch)

    def _arch(self, values: Mapping[str, Any]) -> Arch:
        base = super().arch(values)  # validates; 32.0 becomes the option 32 below (one arch_id)
        vec = np.array([d.index(base[d.label]) for d in self.decisions], dtype=np.int64)
        present = self.complete or self.row_of(vec) is not None
        row = vec if present else self.genes[self.nearest(vec)]
        values = {d.label: d.options[i] for d, i in zip(self.decisions, row, strict=True)}
        return super().arch(values)

    def sample(self, rng: np.random.Generator) -> Arch:
        """A uniformly random row (uniform per decision when the table is complete)."""
        if self.complete:
            return super().sample(rng)
        return self.arch_of_row(int(rng.integers(len(self.genes))))

    def mutate(self, arch: Arch, rng: np.random.Generator, prob: float | None = None) -> Arch:
        """As `SearchSpace.mutate`; on an incomplete table, with `prob=None`, a row one gene
        away drawn uniformly (or the nearest other row when no row is one gene away)."""
        if self.complete or prob is not None:
            return super().mutate(arch, rng, prob)
        vec = self.encode(arch)
        hamming = np.count_nonzero(self.genes != vec, axis=1)
        neighbours = np.flatnonzero(hamming == 1)
        if len(neighbours):
            return self.arch_of_row(int(neighbours[rng.integers(len(neighbours))]))
        if len(self.genes) == 1:
            return arch
        return self.arch_of_row(self.nearest(vec, exclude=self.row_of(vec)))

    def compose(self, choices: Sequence[int], base: Mapping[str, Any] | None = None) -> Arch:
        """Node choices → Arch; an incomplete table refuses (see `missing_message`)."""
        if not self.complete:
            raise BenchmarkError(self.missing_message())
        return super().compose(choices, base)

    # --- strings ------------------------------------------------------------------------------
    def to_string(self, arch: Mapping[str, Any]) -> str:
        """`l1=3,l2=5,...`: readable in reports and logs."""
        return ",".join(f"{d.label}={arch[d.label]}" for d in self.decisions)

    def parse(self, text: str) -> Arch:
        """Inverse of `to_string` (options matched by their text)."""
        parts = dict(p.split("=", 1) for p in str(text).split(",") if "=" in p)
        values: dict[str, Any] = {}
        for d in self.decisions:
            matches = [o for o in d.options if str(o) == parts.get(d.label)]
            if len(matches) != 1:
                raise BenchmarkError(
                    f"{text!r} is not an architecture of table {self.name!r}: expected "
                    f"{d.label}=<one of {list(d.options)}>"
                )
            values[d.label] = matches[0]
        return self.arch(values)
