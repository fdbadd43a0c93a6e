"""`space=table`: any table with one row per architecture as a search space.

Options and their order, repeated rows, complete and incomplete tables (what each strategy
may do on them), a cost that does not add up, regret against the table's best row, and one
clear error for each kind of bad input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from search.benchmarks import BenchmarkError, ColumnBenchmark, load_column_table
from search.results import SearchResult
from search.strategies._genetic import GeneCodec
from search.strategies.evolution import RegularizedEvolution
from search.strategies.layernas import LayerNAS
from search.strategies.linas import LINAS
from search.strategies.mathnas import MathNAS
from search.strategies.nsga2 import NSGA2Search
from search.strategies.random import RandomSearch
from tests.search.column_tables import OPS, decisions, drop_rows, layer_table


def bench_of(frame: pd.DataFrame, layers: int = 4, **kwargs: Any) -> ColumnBenchmark:
    options: dict[str, Any] = {
        "decisions": decisions(layers), "quality": "acc", "report_quality": "test_acc",
        "costs": {"macs": "flops", "latency_ms": "lat"}, **kwargs,
    }  # fmt: skip
    return ColumnBenchmark(frame, **options)


@pytest.fixture(scope="module")
def complete() -> ColumnBenchmark:
    return bench_of(layer_table())


@pytest.fixture(scope="module")
def incomplete() -> ColumnBenchmark:
    return bench_of(drop_rows(layer_table(interaction=0.3), 0.4))


# --- options ------------------------------------------------------------------------------------
def test_numeric_options_sorted_strings_in_order_of_appearance() -> None:
    numeric = bench_of(layer_table())
    assert [d.options for d in numeric.space.decisions] == [(8, 16, 32)] * 4
    assert numeric.space.largest() == {f"l{i}": 32 for i in range(1, 5)}
    frame = layer_table(options=OPS, shuffle=False)  # skip appears first, conv5 last
    strings = bench_of(frame)
    assert strings.space.decisions[0].options == OPS
    assert strings.cost(strings.space.largest())["macs"] == frame["flops"].max()
    reordered = bench_of(frame, order={"l1": ["conv5", "skip", "conv3"], "l2": OPS[::-1]})
    assert reordered.space.decisions[0].options == ("conv5", "skip", "conv3")
    assert reordered.space.decisions[1].options == OPS[::-1]
    assert reordered.space.decisions[2].options == OPS


def test_lookups_match_the_rows(complete: ColumnBenchmark) -> None:
    frame = layer_table()
    row = frame.iloc[7]
    arch = complete.space.arch({d: row[d] for d in decisions()})
    got = complete.validate([arch])[0]
    assert got == {"accuracy": pytest.approx(row.acc), "test_accuracy": pytest.approx(row.test_acc)}
    assert complete.cost(arch) == {"macs": row.flops, "latency_ms": row.lat}
    assert complete.space.parse(complete.space.to_string(arch)) == arch
    assert complete.space.complete and len(complete) == 81


def test_repeated_architectures_are_averaged_with_a_warning(caplog) -> None:
    frame = layer_table()
    twice = pd.concat([frame, frame.iloc[:3].assign(acc=frame.acc.iloc[:3] + 2.0)])
    with caplog.at_level(logging.WARNING):
        bench = bench_of(twice)
    assert "3 rows repeat an architecture" in caplog.text
    assert len(bench) == len(frame)
    arch = bench.space.arch({d: frame.iloc[0][d] for d in decisions()})
    assert bench.validate([arch])[0]["accuracy"] == pytest.approx(frame.acc.iloc[0] + 1.0)


# --- incomplete tables ----------------------------------------------------------------------
def test_an_incomplete_table_only_makes_rows_it_has(incomplete: ColumnBenchmark) -> None:
    space = incomplete.space
    assert not space.complete
    rng = np.random.default_rng(0)
    present = {space.to_string(space.arch_of_row(i)) for i in range(len(incomplete))}
    archs = [space.sample(rng) for _ in range(200)]
    archs += [space.mutate(a, rng) for a in archs]
    archs += [space.mutate(a, rng, prob=0.5) for a in archs[:100]]
    archs += [space.crossover(a, b, rng) for a, b in zip(archs[:100], archs[100:200], strict=True)]
    archs += [space.decode(rng.integers(0, 3, 4)) for _ in range(200)]
    assert {space.to_string(a) for a in archs} <= present
    codec = GeneCodec(space)
    genes = codec.canonical(rng.integers(0, 3, (300, 4)))
    assert {space.to_string(a) for a in codec.decode(genes)} <= present
    # a one-gene mutation stays one gene away whenever the table has such a row
    parent = archs[0]
    child = space.mutate(parent, rng)
    assert int((space.encode(child) != space.encode(parent)).sum()) == 1


def test_a_missing_combination_is_repaired_to_its_nearest_row() -> None:
    frame = layer_table()
    gone = frame[(frame.l1 == 8) & (frame.l2 == 8) & (frame.l3 == 8) & (frame.l4 == 8)].index
    bench = bench_of(frame.drop(index=gone))
    repaired = bench.space.arch({"l1": 8, "l2": 8, "l3": 8, "l4": 8})
    # one decision changed, by one option position; the first such row in option order
    assert repaired == {"l1": 8, "l2": 8, "l3": 8, "l4": 16}


def test_relative_bounds_without_the_largest_row_use_its_nearest(caplog) -> None:
    frame = layer_table()
    largest = (frame[decisions()] == 32).all(axis=1)
    with caplog.at_level(logging.WARNING):
        bench = bench_of(frame[~largest])
    assert "no row with every decision at its largest option" in caplog.text
    nearest = bench.space.largest()
    assert nearest == {"l1": 16, "l2": 32, "l3": 32, "l4": 32}
    row = frame[(frame.l1 == 16) & (frame.l2 == 32) & (frame.l3 == 32) & (frame.l4 == 32)]
    assert bench.relative({"macs": 0.5}) == {"macs": pytest.approx(0.5 * row.flops.iloc[0])}


@pytest.mark.parametrize("strategy", [MathNAS, LayerNAS])
def test_block_strategies_name_the_missing_combinations(incomplete, strategy) -> None:
    problem = incomplete.problem(constraints=incomplete.relative({"macs": 0.5}), budget=50)
    with pytest.raises(BenchmarkError) as err:
        strategy().run(problem, np.random.default_rng(0))
    count = incomplete.space.combinations - len(incomplete)
    assert f"lacks {count} of the 81 combinations" in str(err.value)
    assert "l1=8, l2=8" in str(err.value) and "strategy=random" in str(err.value)


ROW_STRATEGIES: dict[str, Callable[[], Any]] = {
    "random": lambda: RandomSearch(),
    "evolution": lambda: RegularizedEvolution(population=10, tournament=3),
    "nsga2": lambda: NSGA2Search(population=10),
    "linas": lambda: LINAS(initial=10, population=10, generations=5, folds=2),
}
STRATEGIES: dict[str, Callable[[], Any]] = {
    **ROW_STRATEGIES,
    "mathnas": lambda: MathNAS(quality_sample=0),
    "layernas": lambda: LayerNAS(),
}


@pytest.mark.parametrize("name", list(ROW_STRATEGIES))
def test_row_strategies_run_on_an_incomplete_table(incomplete, name: str) -> None:
    problem = incomplete.problem(constraints=incomplete.relative({"macs": 0.6}), budget=25)
    ROW_STRATEGIES[name]().run(problem, np.random.default_rng(1))
    assert problem.used == 25  # every validation a row of the table (validate refuses others)
    assert all(incomplete.space.row_of(incomplete.space.encode(e.arch)) is not None
               for e in problem.history)


# --- complete tables: every strategy, a cost that does not add up, regret -------------------
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_runs_and_regret_matches_brute_force(complete, name: str) -> None:
    constraints = complete.relative({"macs": 0.5, "latency_ms": 0.8})  # latency: not additive
    problem = complete.problem(constraints=constraints, budget=30)
    extras = STRATEGIES[name]().run(problem, np.random.default_rng(0))
    result = SearchResult.from_problem(problem, name, 0, extras)
    regret = complete.oracle().regret(result)
    assert set(regret) == {"macs", "latency_ms", "all"}
    frame = layer_table()
    ok = (frame.flops <= constraints["macs"]) & (frame.lat <= constraints["latency_ms"])
    entry = regret["all"]
    assert entry["table_best"]["accuracy"] == pytest.approx(frame.acc[ok].max())
    assert entry["best_test_accuracy"] == pytest.approx(frame.test_acc[ok].max())
    found = result.best["all"]
    assert found is not None and entry["found"]["arch_id"] == found.arch_id
    assert entry["regret"] == pytest.approx(frame.acc[ok].max() - found.metrics["accuracy"])
    assert entry["regret"] >= 0 and entry["report_regret"] >= 0
    if name in ("mathnas", "layernas"):  # additive quality: the layer-wise methods solve it
        assert entry["regret"] == pytest.approx(0.0, abs=1e-9)


def test_a_minimised_quality_is_searched_as_loss() -> None:
    frame = layer_table().assign(err=lambda f: 100 - f.acc)
    bench = ColumnBenchmark(frame, decisions(), "err", {"macs": "flops"}, quality_sense="min")
    problem = bench.problem(constraints=bench.relative({"macs": 0.5}), budget=40)
    assert problem.objectives == ("loss", "macs")
    LayerNAS().run(problem, np.random.default_rng(0))
    result = SearchResult.from_problem(problem, "layernas", 0)
    entry = bench.oracle().regret(result)["macs"]
    ok = frame.flops <= bench.relative({"macs": 0.5})["macs"]
    assert entry["table_best"]["loss"] == pytest.approx(frame.err[ok].min())
    assert entry["regret"] == pytest.approx(0.0, abs=1e-9)
    assert bench.reference() == {"loss": pytest.approx(frame.err.max())}


def test_a_cost_of_its_own_name_is_a_metric() -> None:
    bench = ColumnBenchmark(layer_table(), decisions(), "acc", {"energy_uj": "lat"})
    problem = bench.problem(constraints={"energy_uj": 40.0}, budget=10)
    RandomSearch().run(problem, np.random.default_rng(0))
    assert all(e.measurement["energy_uj"] <= 40.0 for e in problem.history)


# --- bad input: one clear message each -------------------------------------------------------
def _write(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("change", "kwargs", "message"),
    [
        (None, {"quality": "val_acc"}, r"no column val_acc \(quality\); its columns are \['l1'"),
        (None, {"decisions": ["l1", "l9"]}, r"no column l9 \(decision\)"),
        (lambda f: f.assign(l4=16), {}, "'l4' has a single value 16"),
        (lambda f: f.assign(flops=f.flops.astype(object).where(f.index != 3, "fast")), {},
         "cost column 'flops' has 1 non-numeric values"),
        (lambda f: f.assign(lat=f.lat - 30), {}, "cost column 'lat' has .* negative values"),
        (lambda f: f.assign(l2=f.l2.where(f.index != 0)), {}, "'l2' has 1 empty cells"),
        (None, {"quality_sense": "up"}, "max or min"),
        (None, {"order": {"l1": [8, 16]}}, r"order.l1 must list each value .* not listed: \[32\]"),
        (None, {"costs": {"accuracy": "flops"}}, "is a quality metric"),
    ],
)
def test_bad_tables(tmp_path: Path, change, kwargs: dict[str, Any], message: str) -> None:
    frame = layer_table()
    frame = change(frame) if change else frame
    options = {"decisions": decisions(), "quality": "acc", "costs": {"macs": "flops",
               "latency_ms": "lat"}, **kwargs}  # fmt: skip
    with pytest.raises(BenchmarkError, match=message):
        load_column_table(_write(tmp_path, frame), **options)


def test_a_constraint_no_row_meets_names_the_cheapest_row(complete: ColumnBenchmark) -> None:
    cheapest = layer_table().flops.min()
    with pytest.raises(BenchmarkError, match=f"cannot be met.* has macs = {cheapest:g}"):
        complete.problem(constraints={"macs": cheapest - 1}, budget=5)
    with pytest.raises(BenchmarkError, match="no cost 'energy'.* costs are"):
        complete.problem(constraints={"energy": 1.0}, budget=5)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\xff\xfe\x00", "not a table"),
        (b"just one line of prose without any separator\n", "not a table"),
        (b"", "not a table"),
    ],
)
def test_a_file_that_is_not_a_table(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    with pytest.raises(BenchmarkError, match=message):
        load_column_table(path, decisions(), "acc", {"macs": "flops"})
    with pytest.raises(BenchmarkError, match="no table at"):
        load_column_table(tmp_path / "nothing.csv", decisions(), "acc", {"macs": "flops"})
    (tmp_path / "t.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(BenchmarkError, match="not a table"):
        load_column_table(tmp_path / "t.parquet", decisions(), "acc", {"macs": "flops"})


def test_parquet_and_csv_give_the_same_benchmark(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    frame = layer_table(options=OPS)
    frame.to_parquet(tmp_path / "t.parquet")
    a = load_column_table(tmp_path / "t.parquet", decisions(), "acc", {"macs": "flops"})
    b = load_column_table(_write(tmp_path, frame), decisions(), "acc", {"macs": "flops"})
    assert a.space.to_config() == b.space.to_config()
    assert np.array_equal(a.quality, b.quality) and a.name == "t"
