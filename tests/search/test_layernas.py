"""LayerNAS: the optimum where its assumptions hold, the budget is a hard limit."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest

from search.problem import Problem, ProblemError
from search.strategies.layernas import LayerNAS
from supernet.space import Arch
from tests.search._strategy_toys import layered_space


def toy_problem(
    constraints: dict[str, float] | None,
    optional: tuple[int, ...] = (),
    n_nodes: int = 5,
    n_opts: int = 4,
    budget: int = 10_000,
    seed: int = 0,
) -> Problem:
    """Additive accuracy and additive integer latency (so buckets of width 1 are exact)."""
    rng = np.random.default_rng(seed)
    space = layered_space(n_nodes, n_opts, optional)
    gain = rng.uniform(0, 3, (n_nodes, n_opts + 1))
    gain[:, -1] = 0.0  # absent
    lat = np.concatenate([rng.integers(1, 6, (n_nodes, n_opts)), np.zeros((n_nodes, 1))], 1)
    macs = rng.uniform(1e6, 2e7, (n_nodes, n_opts + 1))
    idx = np.arange(n_nodes)

    def validate(archs):
        return [{"accuracy": 70.0 + gain[idx, space.node_choices(a)].sum()} for a in archs]

    def cost(a: Arch) -> dict[str, float]:
        c = space.node_choices(a)
        return {"latency_ms": 2.0 + lat[idx, c].sum(), "macs": 1e6 + macs[idx, c].sum()}

    return Problem(space, ("accuracy", "latency_ms"), constraints, validate, cost, budget)


def optimum(problem: Problem) -> tuple[float, float]:
    """(best feasible accuracy, smallest latency) by brute force."""
    space, best, low = problem.space, -np.inf, np.inf
    for choices in itertools.product(*[range(n.num_options) for n in space.nodes]):
        arch = space.compose(list(choices), base=space.largest())
        cost = problem.cost(arch)
        low = min(low, cost["latency_ms"])
        if problem.feasible(cost):
            best = max(best, problem._validate([arch])[0]["accuracy"])
    return best, low


@pytest.mark.parametrize("fill", ["largest", "smallest"])
@pytest.mark.parametrize("optional", [(), (2, 3, 4)])
@pytest.mark.parametrize("slack", [0.0, 3.0, 7.0])
def test_finds_the_optimum_when_its_assumptions_hold(fill, optional, slack) -> None:
    low = optimum(toy_problem(None, optional))[1]
    problem = toy_problem({"latency_ms": low + slack}, optional)
    best, _ = optimum(problem)
    # integer latencies: one bucket per reachable value makes the memo table exact
    extras = LayerNAS(buckets=int(slack) + 1, fill=fill).run(problem, np.random.default_rng(0))
    assert extras["completed"]
    assert extras["best"]["score"] == pytest.approx(best)
    assert problem.feasible(problem.cost(problem.space.arch(extras["best"]["arch"])))
    # far fewer validations than the space has networks
    assert problem.used < 0.5 * np.prod([n.num_options for n in problem.space.nodes])


def test_too_few_buckets_still_give_a_feasible_answer() -> None:
    problem = toy_problem({"latency_ms": 20.0})
    extras = LayerNAS(buckets=1).run(problem, np.random.default_rng(0))
    assert extras["best"] is not None
    assert problem.feasible(problem.cost(problem.space.arch(extras["best"]["arch"])))


@pytest.mark.parametrize("budget", [3, 17, 40])
def test_never_exceeds_the_budget(budget: int) -> None:
    problem = toy_problem({"latency_ms": 16.0}, (2, 3, 4), budget=budget)
    extras = LayerNAS(buckets=10, top_per_bucket=2).run(problem, np.random.default_rng(0))
    assert problem.used <= budget
    assert not extras["completed"]
    assert "budget ran out" in extras["stopped"]
    if extras["best"] is not None:
        assert problem.feasible(problem.cost(problem.space.arch(extras["best"]["arch"])))


def test_a_budget_short_of_one_pass_is_announced(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="search.strategies.layernas"):
        LayerNAS().run(toy_problem({"latency_ms": 20.0}, budget=10), np.random.default_rng(0))
    (message,) = [r.getMessage() for r in caplog.records]
    assert "budget of 10 validations may end before the last of the 5 nodes" in message
    assert "up to 20" in message and "fill=smallest" in message
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="search.strategies.layernas"):
        LayerNAS().run(toy_problem({"latency_ms": 20.0}, budget=20), np.random.default_rng(0))
    assert not caplog.records


def test_automatic_buckets_fit_the_budget() -> None:
    problem = toy_problem({"latency_ms": 20.0}, budget=60)
    extras = LayerNAS().run(problem, np.random.default_rng(0))
    assert extras["completed"] and problem.used <= 60
    # after node 0 (4 validations) H is sized for the 4 remaining nodes of 4 options each
    assert extras["buckets"][0] == (60 - 4) // (4 * 4)
    assert len(extras["buckets"]) == 5


def test_candidates_that_cannot_become_feasible_are_pruned() -> None:
    problem = toy_problem(None)
    low = optimum(problem)[1]
    problem = toy_problem({"latency_ms": low})
    LayerNAS(buckets=4).run(problem, np.random.default_rng(0))
    space = problem.space
    # at the smallest achievable latency only each node's cheapest options can be kept
    cheapest = 0
    for i, node in enumerate(space.nodes):
        lat = [
            problem.cost(space.compose([j if k == i else 0 for k in range(5)]))["latency_ms"]
            for j in range(node.num_options)
        ]
        cheapest += sum(v == min(lat) for v in lat)
    assert problem.used <= cheapest


def test_infeasible_constraint_is_a_clear_error() -> None:
    problem = toy_problem({"latency_ms": 3.0}, budget=50)
    with pytest.raises(ProblemError, match="latency_ms <= 3 cannot be met"):
        LayerNAS(buckets=5).run(problem, np.random.default_rng(0))


def test_front_over_buckets_is_reported() -> None:
    problem = toy_problem({"latency_ms": 20.0})
    extras = LayerNAS(buckets=6, top_per_bucket=2).run(problem, np.random.default_rng(0))
    buckets = [e["bucket"] for e in extras["front"]]
    assert buckets == sorted(buckets) and set(buckets) <= set(range(6))
    assert all(e["costs"]["latency_ms"] <= 20.0 for e in extras["front"])


@pytest.mark.parametrize("bucket_range", ["layer", "global"])
def test_bucket_range_spans_the_candidates_compared(bucket_range) -> None:
    """`layer` splits the range of the node's children, so its H buckets all hold one."""
    low = optimum(toy_problem(None))[1]
    bound = low + 30.0
    problem = toy_problem({"latency_ms": bound})
    space = problem.space
    extras = LayerNAS(buckets=3, bucket_range=bucket_range).run(
        problem, np.random.default_rng(0)
    )
    later = [range(n.num_options) for n in space.nodes[1:]]
    lowest = [  # each first-node option completed as cheaply as possible
        min(
            problem.cost(space.compose([j, *rest], base=space.largest()))["latency_ms"]
            for rest in itertools.product(*later)
        )
        for j in range(space.nodes[0].num_options)
    ]
    kept_first = {space.node_choices(ev.arch)[0] for ev in problem.history[4:]}
    if bucket_range == "layer":
        assert extras["bucket_range"][0] == pytest.approx([min(lowest), max(lowest)])
        assert len(kept_first) == 3
    else:
        assert extras["bucket_range"][0] == pytest.approx([min(lowest), bound])
        assert len(kept_first) < 3  # the first node's children crowd into the lowest buckets
