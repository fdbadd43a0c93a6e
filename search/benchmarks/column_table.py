"""Any tabular benchmark: a CSV or Parquet file with one row per architecture (`space=table`).

    bench = load_column_table("sweep.csv", decisions=["l1", "l2", "l3"], quality="val_acc",
                              costs={"macs": "flops", "latency_ms": "lat_pixel3"},
                              report_quality="test_acc")
    problem = bench.problem(constraints=bench.relative({"macs": 0.5}), budget=200)

The decision columns define the architecture (see `column_space` for options and incomplete
tables); the quality column is what a search sees, named `accuracy` when larger is better
(`quality_sense="max"`) and `loss` when smaller is (the names every strategy knows), with the
report quality beside it as `test_accuracy` / `test_loss`; each cost column becomes the cost
metric it is mapped to, which `objectives`, `constraints` and `relative_constraints` use.
Repeated architectures are averaged (with a warning). Every problem with the file or the
columns is one `BenchmarkError` that says what the table has.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from search.benchmarks.column_space import ColumnSpace
from search.benchmarks.errors import BenchmarkError
from search.benchmarks.loader import resolve_path
from search.benchmarks.regret import TableOracle
from search.problem import METRICS, Problem, register_cost
from supernet.space import Arch, Decision

log = logging.getLogger(__name__)

SENSES = ("max", "min")
PARQUET = (".parquet", ".pq")
QUALITY_NAMES = {"max": ("accuracy", "test_accuracy"), "min": ("loss", "test_loss")}


def read_frame(path: str | Path) -> pd.DataFrame:
    """A CSV (`.tsv`: tab-separated; optionally compressed, e.g. `.csv.gz`) or Parquet file."""
    if path is None or str(path).strip() in ("", "None", "null"):
        raise BenchmarkError("space=table needs space.path=<a CSV or Parquet file, one row per "
                             "architecture>")
    file = resolve_path(path)
    if not file.is_file():
        raise BenchmarkError(f"no table at {file}; space.path must be a CSV or Parquet file")
    try:
        if file.suffix.lower() in PARQUET:
            frame = pd.read_parquet(file)
        else:
            frame = pd.read_csv(file, sep="\t" if ".tsv" in file.suffixes else ",")
    except ImportError as err:
        raise BenchmarkError(f"reading {file.name} needs pyarrow ({err}); pip install pyarrow "
                             f"or save the table as CSV") from None
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError,
            pd.errors.EmptyDataError) as err:  # fmt: skip
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BenchmarkError(
            f"{file} is not a table pandas can read as "
            f"{'Parquet' if file.suffix.lower() in PARQUET else 'CSV'} ({first}); give a CSV "
            f"with a header row or a Parquet file, one row per architecture"
        ) from None
    if frame.shape[1] < 2 or frame.empty:
        raise BenchmarkError(
            f"{file} is not a table of architectures: it has {frame.shape[0]} rows and "
            f"{frame.shape[1]} column(s) {list(map(str, frame.columns))[:5]}; give a CSV with a "
            f"header row (decision, quality and cost columns) or a Parquet file"
        )
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _options(
    column: pd.Series, label: str, order: Sequence[Any] | None
) -> tuple[tuple[Any, ...], np.ndarray]:
    """The options of a decision column and each row's option index."""
    if column.isna().any():
        first = int(np.flatnonzero(column.isna().to_numpy())[0])
        raise BenchmarkError(
            f"decision column {label!r} has {int(column.isna().sum())} empty cells (first in "
            f"data row {first + 1}); every row needs a value in every decision column"
        )
    values = [_plain(v) for v in pd.unique(column)]
    if order is not None:
        listed: list[Any] = []
        unknown: list[Any] = []
        for wanted in order:  # a YAML number or string matches a value equal or alike in text
            match = [v for v in values if v == wanted or str(v) == str(wanted)]
            (listed if match else unknown).append(match[0] if match else wanted)
        unlisted = [v for v in values if not any(v == x for x in listed)]
        if unknown or unlisted or len(set(map(str, listed))) != len(listed):
            raise BenchmarkError(
                f"space.order.{label} must list each value of column {label!r} once; "
                f"not in the column: {unknown}, not listed: {unlisted[:10]}"
            )
        options = tuple(listed)
    elif pd.api.types.is_numeric_dtype(column):
        options = tuple(sorted(values))
    else:  # strings: order of first appearance
        options = tuple(values)
    if len(options) < 2:
        raise BenchmarkError(
            f"decision column {label!r} has a single value {options[0]!r}: it decides nothing. "
            f"Drop it from space.decisions (or add rows with other values)"
        )
    index = {v: i for i, v in enumerate(options)}
    return tuple(_plain(o) for o in options), column.map(index).to_numpy(dtype=np.int64)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _numeric(frame: pd.DataFrame, column: str, role: str, negative_ok: bool) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & frame[column].notna()
    if bad.any():
        first = frame.loc[bad, column].iloc[0]
        raise BenchmarkError(
            f"{role} column {column!r} has {int(bad.sum())} non-numeric values (first "
            f"{first!r}); it must hold numbers"
        )
    if role != "report quality" and values.isna().any():
        raise BenchmarkError(
            f"{role} column {column!r} has {int(values.isna().sum())} empty cells; fill them "
            f"or drop those rows"
        )
    if not negative_ok and (values < 0).any():
        raise BenchmarkError(
            f"{role} column {column!r} has {int((values < 0).sum())} negative values (smallest "
            f"{values.min():g}); a cost must be ≥ 0 for constraints and relative bounds"
        )
    return values.to_numpy(dtype=float)


def _check_names(
    frame: pd.DataFrame,
    decisions: list[str],
    quality: str,
    costs: Mapping[str, str],
    report_quality: str | None,
    quality_sense: str,
    order: Mapping[str, Any],
    where: str,
) -> None:
    """The settings name columns the table has, each in one role, and nothing twice."""
    if quality_sense not in SENSES:
        raise BenchmarkError(f"space.quality_sense must be max or min, not {quality_sense!r}")
    if not decisions:
        raise BenchmarkError("space.decisions is empty: list the columns that define the "
                             "architecture, e.g. 'space.decisions=[l1,l2,l3]'")
    if not quality:
        raise BenchmarkError("space.quality is not set: name the column the search sees, "
                             "e.g. space.quality=val_acc")
    if not costs:
        raise BenchmarkError("space.costs is empty: map cost names to columns, e.g. "
                             "'space.costs={macs: flops}'")
    if len(set(decisions)) != len(decisions):
        raise BenchmarkError(f"space.decisions repeats a column: {decisions}")
    reserved = {"accuracy", "test_accuracy", "loss", "test_loss", "bleu"}
    for metric in costs:
        if metric in reserved or (metric in METRICS and METRICS[metric][0]):
            raise BenchmarkError(f"cost name {metric!r} is a quality metric; name the cost "
                                 f"after what it measures (macs, params, latency_ms, ...)")
    wanted = {**{d: "decision" for d in decisions}, quality: "quality",
              **{c: f"cost ({m})" for m, c in costs.items()}}
    if report_quality:
        wanted[report_quality] = "report quality"
    missing = [f"{c} ({role})" for c, role in wanted.items() if c not in frame.columns]
    if missing:
        raise BenchmarkError(f"the table {where} has no column {', '.join(missing)}; "
                             f"its columns are {list(frame.columns)}")
    overlap = set(decisions) & ({quality, report_quality} | set(costs.values()))
    if overlap:
        raise BenchmarkError(f"columns {sorted(overlap)} are both decisions and figures")
    unknown_order = sorted(set(order) - set(decisions))
    if unknown_order:
        raise BenchmarkError(f"space.order names {unknown_order}, which are not decisions "
                             f"{decisions}")


class ColumnBenchmark:
    """Look-up evaluator and cost model of a table with one row per architecture.

    Args:
        frame: the table.
        decisions: the columns that define the architecture, in layer order.
        quality: the column the search sees.
        costs: cost metric name → column.
        report_quality: a column reported beside the quality (e.g. test accuracy), or None.
        quality_sense: `max` (larger is better) or `min`.
        order: optional column → its values in small → large order.
        name: the space's name (default `table`).
        source: where the table came from, for reports.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        decisions: Sequence[str],
        quality: str,
        costs: Mapping[str, str],
        report_quality: str | None = None,
        quality_sense: str = "max",
        order: Mapping[str, Sequence[Any]] | None = None,
        name: str = "table",
        source: str = "",
    ) -> None:
        decisions = [str(d) for d in (decisions or [])]
        order = dict(order or {})
        _check_names(frame, decisions, quality, costs, report_quality, quality_sense, order,
                     source or name)
        self.quality_metric, self.report_metric = QUALITY_NAMES[quality_sense]
        opts, genes = zip(*(_options(frame[d], d, order.get(d)) for d in decisions), strict=True)
        genes_matrix = np.column_stack(genes)
        figures = pd.DataFrame({"quality": _numeric(frame, quality, "quality", True)})
        figures["report"] = (_numeric(frame, report_quality, "report quality", True)
                             if report_quality else np.nan)
        for metric, column in costs.items():
            figures[f"cost:{metric}"] = _numeric(frame, column, "cost", False)
        figures, genes_matrix = self._merge_repeats(figures, genes_matrix)
        decision_objs = [Decision(d, o) for d, o in zip(decisions, opts, strict=True)]
        self.space = ColumnSpace(name, decision_objs, genes_matrix)
        self.name = name
        self.source = source
        self.columns = {"quality": quality, "report_quality": report_quality, **dict(costs)}
        self.maximise = quality_sense == "max"
        self.quality = figures["quality"].to_numpy(dtype=float)
        self.report = figures["report"].to_numpy(dtype=float) if report_quality else None
        self.costs = {m: figures[f"cost:{m}"].to_numpy(dtype=float) for m in costs}
        for metric in self.costs:
            register_cost(metric)
        self.lookups = 0
        largest = self.space.genes[-1]  # rows are in option order
        if not np.array_equal(largest, self.space.num_options - 1):
            log.warning("table %s has no row with every decision at its largest option; "
                        "relative constraints are fractions of its nearest row, %s", name,
                        self.space.to_string(self.space.largest()))
        if not self.space.complete:
            log.warning("table %s is incomplete: %d of its %d combinations have rows; random, "
                        "evolution, nsga2 and linas stay on those rows", name, len(genes_matrix),
                        self.space.combinations)

    @staticmethod
    def _merge_repeats(figures: pd.DataFrame, genes: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        """Rows of the same architecture → one row with their means (and a warning); rows in
        option order (first decision slowest), whatever the file's order."""
        order = np.lexsort(genes.T[::-1])
        figures, genes = figures.iloc[order].reset_index(drop=True), genes[order]
        keys = pd.MultiIndex.from_arrays(genes.T).factorize()[0]
        repeats = len(keys) - keys.max() - 1
        if repeats == 0:
            return figures, genes
        groups = pd.Series(keys).value_counts()
        log.warning("%d rows repeat an architecture of another row (%d architectures have "
                    "several rows); each architecture gets the mean of its rows",
                    repeats, int((groups > 1).sum()))
        merged = figures.groupby(keys, sort=True).mean()
        first = pd.Series(np.arange(len(keys))).groupby(keys, sort=True).first().to_numpy()
        return merged.reset_index(drop=True), genes[first]

    def __repr__(self) -> str:
        kind = "complete" if self.space.complete else "incomplete"
        return f"ColumnBenchmark({self.name}, {len(self)} rows, {kind}, {self.lookups} look-ups)"

    def __len__(self) -> int:
        return len(self.quality)

    # --- look-ups -----------------------------------------------------------------------------
    def row(self, arch: Mapping[str, Any] | str) -> int:
        """Row of an Arch (or its `to_string` text); a missing combination is an error."""
        if isinstance(arch, str):
            arch = self.space.parse(arch)
        vec = self.space.encode(arch)
        row = self.space.row_of(vec)
        if row is None:
            raise BenchmarkError(f"{self.space.to_string(arch)} has no row in table {self.name!r}; "
                                 f"build archs with benchmark.space (arch, sample)")
        return row

    def validate(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        """The quality (and report quality) of each arch: a counted look-up."""
        out = []
        for arch in archs:
            i = self.row(arch)
            values = {self.quality_metric: float(self.quality[i])}
            if self.report is not None:
                values[self.report_metric] = float(self.report[i])
            out.append(values)
        self.lookups += len(out)
        return out

    def cost(self, arch: Arch) -> dict[str, float]:
        """The cost columns of `arch`, by cost name; free, never counted."""
        i = self.row(arch)
        return {m: float(v[i]) for m, v in self.costs.items()}

    # --- brute force over the table -----------------------------------------------------------
    def oracle(self) -> TableOracle:
        return TableOracle(
            quality=self.quality, report=self.report, costs=self.costs,
            arch_at=self.space.arch_of_row, maximise=self.maximise,
            quality_metric=self.quality_metric, report_metric=self.report_metric,
            describe=self.space.to_string, name=f"table {self.name!r}",
        )  # fmt: skip

    def best_feasible(self, constraints: Mapping[str, float] | None = None) -> tuple[Arch, float]:
        """The row with the best quality under `constraints`, and that quality."""
        row = self.oracle().best_row(constraints)
        return self.space.arch_of_row(row), float(self.quality[row])

    def relative(self, fractions: Mapping[str, float]) -> dict[str, float]:
        """`{"macs": 0.5}` → half the cost of the row with every decision at its largest option
        (its nearest row when the table lacks it)."""
        largest = self.cost(self.space.largest())
        unknown = sorted(set(fractions) - set(largest))
        if unknown:
            raise BenchmarkError(f"no cost {unknown} in table {self.name!r}; its costs are "
                                 f"{sorted(largest)}")
        return {m: float(f) * largest[m] for m, f in fractions.items()}

    def problem(
        self,
        objectives: Sequence[str] | None = None,
        constraints: Mapping[str, float] | None = None,
        budget: int = 100,
    ) -> Problem:
        """A Problem on this table (default objectives: the quality and the first cost)."""
        objectives = objectives or (self.quality_metric, next(iter(self.costs)))
        self.oracle().check_constraints(constraints or {})
        problem = Problem(space=self.space, objectives=objectives, constraints=constraints,
                          validate=self.validate, cost=self.cost, budget=budget,
                          reference=self.reference())
        self.oracle().check(problem)
        return problem

    def reference(self) -> dict[str, float]:
        """Hypervolume reference of a minimised quality: its worst value in the table."""
        return {} if self.maximise else {self.quality_metric: float(np.max(self.quality))}


def load_column_table(
    path: str | Path,
    decisions: Sequence[str],
    quality: str,
    costs: Mapping[str, str],
    report_quality: str | None = None,
    quality_sense: str = "max",
    order: Mapping[str, Sequence[Any]] | None = None,
    name: str | None = None,
) -> ColumnBenchmark:
    """The benchmark of the table at `path` (see `ColumnBenchmark` for the arguments)."""
    frame = read_frame(path)
    source = str(resolve_path(path))
    stem = Path(source).name.split(".")[0] or "table"
    # plain containers whatever the caller passed (Hydra passes DictConfig and ListConfig)
    costs = {str(k): str(v) for k, v in dict(costs or {}).items()}
    order = {str(k): list(v) for k, v in dict(order or {}).items()}
    return ColumnBenchmark(frame, [str(d) for d in decisions or []],
                           str(quality) if quality else "", costs, report_quality or None,
                           quality_sense, order, name or stem, source)
