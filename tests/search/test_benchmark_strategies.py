"""Every strategy runs unchanged on a tabular benchmark and finds the brute-force optimum.

The table (NATS size restricted to 3 channels: 243 networks) is additive per layer, so the
layer-wise methods must solve it exactly with few look-ups; the others get a budget of about
half the feasible networks (random: all of them, which it must then enumerate).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from search.benchmarks import TabularBenchmark
from search.mathnas.rank import refit_table
from search.mathnas.table import BlockTable
from search.results import SearchResult
from search.strategies.evolution import RegularizedEvolution
from search.strategies.layernas import LayerNAS
from search.strategies.linas import LINAS
from search.strategies.mathnas import MathNAS
from search.strategies.nsga2 import NSGA2Search
from search.strategies.random import RandomSearch
from tests.search.synthetic_tables import nb201_table, sss_table

STRATEGIES: dict[str, tuple[Callable[[], Any], int | None]] = {
    # name: (factory, budget; None = the number of feasible networks)
    "random": (RandomSearch, None),
    "evolution": (lambda: RegularizedEvolution(population=20, tournament=5), 80),
    "nsga2": (lambda: NSGA2Search(population=20), 100),
    "linas": (lambda: LINAS(initial=20, population=20, generations=10), 80),
    "mathnas": (lambda: MathNAS(quality_sample=0), 30),
    "layernas": (LayerNAS, 60),
}


@pytest.fixture(scope="module")
def bench() -> TabularBenchmark:
    return TabularBenchmark.from_table(sss_table(), "cifar100")


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_strategy_finds_the_feasible_optimum(bench: TabularBenchmark, name: str) -> None:
    factory, budget = STRATEGIES[name]
    constraints = bench.relative({"macs": 0.5})
    n_feasible = int(bench.feasible_mask(constraints).sum())
    budget = budget or n_feasible
    assert budget < len(bench)
    best_arch, best_value = bench.best_feasible(constraints)
    problem = bench.problem(("accuracy", "macs"), constraints, budget)
    before = bench.lookups
    strategy = factory()
    extras = strategy.run(problem, np.random.default_rng(0))
    result = SearchResult.from_problem(problem, strategy.name, 0, extras)
    found = result.best["all"]
    assert found is not None
    assert found.arch == best_arch
    assert found.metrics["accuracy"] == pytest.approx(best_value)
    assert problem.used <= budget
    assert bench.lookups - before == problem.used  # every look-up is one counted validation
    if name in ("mathnas", "layernas"):  # the table satisfies their assumptions
        assert problem.used < n_feasible / 2


# --- MathNAS variants and LayerNAS's jittered grid ---------------------------------------------
@pytest.fixture(scope="module")
def nb201() -> TabularBenchmark:
    """Distinct cells (additive per-edge FLOPs, as MathNAS's cost model needs)."""
    return TabularBenchmark.from_table(nb201_table(), "cifar10", canonical=False)


@pytest.mark.parametrize("rounds", [1, 4])
def test_mathnas_top_k_spends_the_table_plus_k_distinct_feasible_picks(
    nb201: TabularBenchmark, rounds: int
) -> None:
    constraints = nb201.relative({"macs": 0.5})
    problem = nb201.problem(("accuracy", "macs"), constraints, 200)
    extras = MathNAS(quality_sample=0, top_k=12, refit_rounds=rounds).run(
        problem, np.random.default_rng(0)
    )
    picks = [f for f in extras["predicted_front"] if "rank" in f]
    assert len(picks) == 12 and len({p["arch_id"] for p in picks}) == 12
    assert problem.used == extras["table_validations"] + 12  # no pick was seen before
    assert all(p["costs"]["macs"] <= constraints["macs"] for p in picks)
    assert sorted({p["round"] for p in picks}) == list(range(rounds))
    assert (extras["refit_table"] is not None) == (rounds > 1)
    assert extras["ranked_by_enumeration"]


def test_ranking_every_network_gives_the_solver_picks(nb201: TabularBenchmark) -> None:
    constraints = nb201.relative({"macs": 0.3})
    predicted = []
    for limit in (200_000, 0):  # enumeration, then one program with exclusion cuts per pick
        problem = nb201.problem(("accuracy", "macs"), constraints, 200)
        extras = MathNAS(quality_sample=0, top_k=6, enumerate_limit=limit).run(
            problem, np.random.default_rng(0)
        )
        assert extras["ranked_by_enumeration"] == (limit > 0)
        predicted.append([f["predicted_accuracy"] for f in extras["predicted_front"]])
    assert predicted[0] == pytest.approx(predicted[1])


def test_refit_recovers_additive_drops_from_validated_networks(nb201: TabularBenchmark) -> None:
    problem = nb201.problem(("accuracy", "macs"), nb201.relative({"macs": 1.0}), 100)
    extras = MathNAS(quality_sample=0, flops_correction=False).run(
        problem, np.random.default_rng(0)
    )
    table = BlockTable.from_dict(extras["block_table"])
    wrong = refit_table(table, [], False, 1.0)  # nothing observed: the table itself
    assert wrong.base_accuracy == table.base_accuracy
    rng = np.random.default_rng(1)
    archs = [nb201.space.sample(rng) for _ in range(80)]
    measured = nb201.validate(archs)
    observed = [
        (nb201.space.node_choices(a), m["accuracy"]) for a, m in zip(archs, measured, strict=True)
    ]
    fitted = refit_table(table, observed, False, 1e-3)
    truth = np.array([y for _, y in observed])
    before = np.array([table.predict_accuracy(c, False) for c, _ in observed])
    after = np.array([fitted.predict_accuracy(c, False) for c, _ in observed])
    # the synthetic accuracy is additive per edge up to a jitter below 1 point
    assert np.abs(after - truth).max() < 1.0 < np.abs(before - truth).max()


def test_layernas_jittered_grid_differs_by_seed_and_keeps_the_budget(
    bench: TabularBenchmark,
) -> None:
    constraints = bench.relative({"macs": 0.5})
    _, best_value = bench.best_feasible(constraints)
    seen = set()
    for seed in range(4):
        problem = bench.problem(("accuracy", "macs"), constraints, 60)
        extras = LayerNAS(top_per_bucket=3, bucket_jitter=True).run(
            problem, np.random.default_rng(seed)
        )
        assert problem.used <= 60 and extras["bucket_jitter"]
        assert extras["best"]["score"] == pytest.approx(best_value)
        seen.add(tuple(sorted(ev.arch.arch_id for ev in problem.history)))
    assert len(seen) > 1  # the grid moves with the seed
