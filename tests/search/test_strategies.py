"""Search strategies on toy problems with known fronts: budgets, determinism, quality."""

from __future__ import annotations

import numpy as np
import pytest

from search.predictors import fast_predict, fit_predictor, predictor_family, predictor_quality
from search.problem import Problem
from search.results import SearchResult
from search.strategies._genetic import GeneCodec
from search.strategies.base import Strategy
from search.strategies.evolution import RegularizedEvolution
from search.strategies.linas import LINAS
from search.strategies.nsga2 import NSGA2Search
from search.strategies.random import RandomSearch
from supernet.space import Decision, SearchSpace
from tests.search._strategy_toys import AdditiveToy

FAST_GRIDS = {"ridge_alphas": (0.1, 1.0, 10.0), "svr_cs": (10.0, 100.0)}


def fast_linas(**kw) -> LINAS:
    return LINAS(**{"generations": 40, **FAST_GRIDS, **kw})


STRATEGIES = {
    "random": RandomSearch,
    "evolution": RegularizedEvolution,
    "nsga2": NSGA2Search,
    "linas": fast_linas,
}


def run(strategy, problem: Problem, seed: int) -> SearchResult:
    extras = strategy.run(problem, np.random.default_rng(seed))
    return SearchResult.from_problem(problem, strategy.name, seed, extras)


@pytest.fixture(scope="module")
def toy() -> AdditiveToy:
    return AdditiveToy()


# --- gene codec and predictors ---------------------------------------------------------
def gated_space() -> SearchSpace:
    decisions = [Decision("depth", (2, 3, 4))]
    for b in range(1, 5):
        cond = ("depth", b) if b > 2 else None
        decisions += [Decision(f"b{b}_k", (3, 5, 7), cond), Decision(f"b{b}_e", (3, 4, 6), cond)]
    decisions.append(Decision("res", (128, 160)))
    return SearchSpace("gated", decisions)


def test_codec_matches_the_space() -> None:
    space = gated_space()
    codec = GeneCodec(space)
    X = np.random.default_rng(0).uniform(-0.6, 3.4, (300, len(space.decisions)))
    genes = codec.canonical(X)
    archs = [space.decode(np.clip(np.rint(x), 0, space.num_options - 1)) for x in X]
    assert np.array_equal(genes, codec.encode(archs))
    assert codec.decode(genes) == archs
    assert [a.arch_id for a in codec.decode(genes)] == [a.arch_id for a in archs]
    assert np.array_equal(codec.features(genes), space.features(archs))
    keys = codec.keys(genes)
    assert len(set(keys)) == len({a.arch_id for a in archs}) < len(X)  # gating merges archs


def test_predictor_picks_a_family_and_fast_predict_is_exact() -> None:
    rng = np.random.default_rng(0)
    X = rng.integers(0, 2, (120, 20)).astype(float)
    linear = 50 + X @ rng.uniform(0, 2, 20)
    ridge = fit_predictor(X, linear, seed=0)
    assert predictor_family(ridge) == "ridge"
    assert -ridge.best_score_ < 0.01  # CV MAPE below 1 %
    curved = 50 + 10 * np.sin(X[:, :3].sum(1) * X[:, 3:6].sum(1))
    svr = fit_predictor(X, curved, seed=0)
    assert predictor_family(svr) == "svr"
    Z = rng.integers(0, 2, (30, 20)).astype(float)
    for model in (ridge, svr):
        assert np.allclose(fast_predict(model)(Z), model.predict(Z))


def test_predictor_quality() -> None:
    class Exact:
        def predict(self, X: np.ndarray) -> np.ndarray:
            return X[:, 0] * 2

    X = np.arange(1, 11, dtype=float)[:, None]
    q = predictor_quality(Exact(), X, X[:, 0] * 2)
    assert q == pytest.approx({"kendall_tau": 1.0, "spearman": 1.0, "mape": 0.0})
    q = predictor_quality(Exact(), X, -X[:, 0])
    assert q["kendall_tau"] == pytest.approx(-1.0) and q["mape"] == pytest.approx(300.0)


# --- every strategy ---------------------------------------------------------------------
@pytest.mark.parametrize("name", STRATEGIES)
def test_is_a_strategy_and_spends_exactly_its_budget(toy: AdditiveToy, name: str) -> None:
    strategy = STRATEGIES[name]()
    assert isinstance(strategy, Strategy) and strategy.name == name
    problem = toy.problem(budget=73)  # not a multiple of any batch size
    run(strategy, problem, seed=0)
    assert problem.used == 73
    assert len({ev.arch.arch_id for ev in problem.history}) == 73  # nothing validated twice


@pytest.mark.parametrize("name", STRATEGIES)
def test_same_seed_same_history(toy: AdditiveToy, name: str) -> None:
    histories = []
    for seed in (5, 5, 6):
        problem = toy.problem(budget=60)
        run(STRATEGIES[name](), problem, seed)
        histories.append([ev.arch.arch_id for ev in problem.history])
    assert histories[0] == histories[1]
    assert histories[0] != histories[2]


@pytest.mark.parametrize("name", STRATEGIES)
def test_only_feasible_archs_are_validated(toy: AdditiveToy, name: str) -> None:
    problem = toy.problem(budget=70, constraints={"macs": 30e6})
    result = run(STRATEGIES[name](), problem, seed=1)
    assert problem.used == 70
    assert all(r.feasible for r in result.rows)


@pytest.mark.parametrize("name", STRATEGIES)
def test_stops_cleanly_when_the_space_is_exhausted(name: str) -> None:
    toy = AdditiveToy(n=3, k=3)  # 27 archs
    problem = toy.problem(budget=100)
    extras = run(STRATEGIES[name](), problem, seed=0).extras
    assert problem.used <= 27 and extras["stopped"] != "budget"
    if name in ("random", "linas"):  # they sample until nothing new is left
        assert problem.used == 27


# --- quality on the additive toy (true front by brute force) ------------------------
def test_nsga2_reaches_the_stated_hypervolume(toy: AdditiveToy) -> None:
    problem = toy.problem(budget=500)
    optimum = toy.optimal_hypervolume(problem)
    result = run(NSGA2Search(), problem, seed=0)
    assert result.hypervolume_normalised[-1] >= 0.95 * optimum


def test_linas_reaches_the_stated_hypervolume_and_reports(toy: AdditiveToy) -> None:
    problem = toy.problem(budget=150)
    optimum = toy.optimal_hypervolume(problem)
    result = run(fast_linas(), problem, seed=0)
    assert result.hypervolume_normalised[-1] >= 0.98 * optimum
    iterations = result.extras["iterations"]
    assert result.extras["initial"] == 20  # then predictor rounds of 10: many of them
    assert [it["validated"] for it in iterations] == [10] * 13
    for it in iterations:  # MACs are analytic: exact from the cost model, never predicted
        assert it["step_seconds"] > 0 and set(it["quality"]) == {"accuracy"}
    assert iterations[-1]["quality"]["accuracy"]["kendall_tau"] > 0.8  # on rows it never saw


def test_linas_beats_random_at_equal_budget(toy: AdditiveToy) -> None:
    scores = {"random": [], "linas": []}
    for seed in (0, 1, 2):
        for name, make in (("random", RandomSearch), ("linas", fast_linas)):
            problem = toy.problem(budget=120)
            scores[name].append(run(make(), problem, seed).hypervolume_normalised[-1])
    assert np.mean(scores["linas"]) > np.mean(scores["random"]) + 0.02


def test_linas_with_exact_costs_and_a_constraint(toy: AdditiveToy) -> None:
    problem = toy.problem(budget=100, constraints={"macs": 35e6})
    result = run(fast_linas(predict_costs=False), problem, seed=3)
    assert problem.used == 100 and all(r.feasible for r in result.rows)
    assert set(result.extras["iterations"][0]["predictors"]) == {"accuracy"}  # macs is exact


@pytest.mark.parametrize(("budget", "bound"), [(300, None), (600, 35e6)])
def test_evolution_climbs_the_first_objective(
    toy: AdditiveToy, budget: int, bound: float | None
) -> None:
    constraints = None if bound is None else {"macs": bound}
    best = {}
    for name, make in (("random", RandomSearch), ("evolution", RegularizedEvolution)):
        problem = toy.problem(budget=budget, constraints=constraints)
        best[name] = run(make(), problem, seed=0).best["all"].metrics["accuracy"]
    G = toy.grid()
    feasible = np.ones(len(G), bool) if bound is None else toy.macs_of(G) <= bound
    optimum = toy.accuracy_of(G)[feasible].max()
    assert best["random"] < optimum - 1.0  # the toy is not trivial
    assert best["evolution"] == pytest.approx(optimum)


def test_linas_predicts_measured_costs_and_takes_analytic_ones_exactly(toy: AdditiveToy) -> None:
    """`predict_costs: auto`: a latency gets a predictor, MACs come from the cost model."""
    calls: list[str] = []

    def cost(arch):
        calls.append(arch.arch_id)
        macs = toy.cost(arch)["macs"]
        return {"macs": macs, "latency_ms": macs / 1e6}

    problem = Problem(toy.space, ("accuracy", "latency_ms"), {"macs": 40e6}, toy.validate, cost,
                      60, reference={"accuracy": 30.0}, analytic_cost=toy.cost)
    result = run(fast_linas(), problem, seed=0)
    predictors = {m for it in result.extras["iterations"] for m in it["predictors"]}
    assert predictors == {"accuracy", "latency_ms"}
    # latency is measured only for archs that are validated or checked as proposals, never
    # for the 20,000 candidates NSGA-II scores on the predictors
    assert len(set(calls)) <= 60 + 5 * 20
