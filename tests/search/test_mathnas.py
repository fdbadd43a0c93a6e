"""MathNAS: the exact optimum of additive toy problems, the FLOPs-corrected program, errors."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from search.mathnas import reduce as blockreduce
from search.mathnas.measure import measure_block_table
from search.mathnas.solve import BlockTableSolver, InfeasibleConstraintError
from search.mathnas.table import BlockNode, BlockOption, BlockTable, BlockTableError
from search.problem import Problem, ProblemError
from search.strategies.mathnas import MathNAS, solve_block_table
from supernet.space import Arch, Decision, SearchSpace
from tests.search._strategy_toys import layered_space


def toy_problem(
    constraints: dict[str, float] | None,
    optional: tuple[int, ...] = (),
    n_nodes: int = 5,
    n_opts: int = 6,
    budget: int = 10_000,
    seed: int = 0,
) -> Problem:
    """Additive accuracy (90 − Σ drops) and additive MACs and latency."""
    rng = np.random.default_rng(seed)
    space = layered_space(n_nodes, n_opts, optional)
    drop = np.sort(rng.uniform(0, 3, (n_nodes, n_opts + 1)), axis=1)[:, ::-1].copy()
    drop[:, -1] = rng.uniform(2, 5, n_nodes)
    macs = np.concatenate([rng.uniform(1e6, 2e7, (n_nodes, n_opts)), np.zeros((n_nodes, 1))], 1)
    lat = np.concatenate([rng.uniform(0.1, 2, (n_nodes, n_opts)), np.zeros((n_nodes, 1))], 1)
    idx = np.arange(n_nodes)

    def validate(archs):
        return [{"accuracy": 90.0 - drop[idx, space.node_choices(a)].sum()} for a in archs]

    def cost(a: Arch) -> dict[str, float]:
        c = space.node_choices(a)
        return {"macs": 5e6 + macs[idx, c].sum(), "latency_ms": 1.0 + lat[idx, c].sum()}

    problem = Problem(space, ("accuracy", "latency_ms"), constraints, validate, cost, budget)
    problem.toy_tables = {"drop": drop, "macs": macs, "latency_ms": lat}  # type: ignore[attr-defined]
    return problem


def brute_force(problem: Problem, constraints: dict[str, float]) -> float:
    """The best true accuracy among all networks meeting the constraints (vectorised)."""
    nodes = problem.space.nodes
    grid = np.array(list(itertools.product(*[range(n.num_options) for n in nodes])))
    ok = np.ones(len(grid), bool)
    optional = [i for i, n in enumerate(nodes) if n.optional]
    for a, b in itertools.pairwise(optional):  # one row per network: monotone depth
        ok &= ~((grid[:, a] == nodes[a].absent_index) & (grid[:, b] != nodes[b].absent_index))
    tables, idx = problem.toy_tables, np.arange(len(nodes))  # type: ignore[attr-defined]
    total = {k: v[idx, grid].sum(axis=1) for k, v in tables.items()}
    cost = {"macs": 5e6 + total["macs"], "latency_ms": 1.0 + total["latency_ms"]}
    for name, bound in constraints.items():
        ok &= cost[name] <= bound
    return float((90.0 - total["drop"])[ok].max())


@pytest.mark.parametrize(
    "constraints",
    [{"latency_ms": 6.0}, {"latency_ms": 7.5, "macs": 4.5e7}, {"macs": 3.0e7}],
)
@pytest.mark.parametrize("optional", [(), (2, 3, 4)])
def test_exact_optimum_of_additive_problems(constraints, optional) -> None:
    problem = toy_problem(constraints, optional)
    extras = MathNAS(flops_correction=False, quality_sample=0).run(
        problem, np.random.default_rng(0)
    )
    pick = extras["predicted_front"][0]
    assert pick["measured_accuracy"] == pytest.approx(brute_force(problem, constraints))
    assert pick["predicted_accuracy"] == pytest.approx(pick["measured_accuracy"])
    assert problem.feasible(problem.cost(problem.space.arch(pick["arch"])))


def random_table(seed: int, optional: bool, labels: str = "ddd") -> BlockTable:
    """5 nodes × 6 options (reference = 5); with `optional` nodes 2–4 have absent = 6, their
    depth decisions named by `labels` ("ddd": one decision, "aab": two, "aba": interleaved).

    Smaller blocks save latency and mostly drop accuracy (a few drops are negative); FLOPs
    savings are unrelated, so the FLOPs correction changes which network is best.
    """
    rng = np.random.default_rng(seed)
    nodes = []
    for i in range(5):
        opt = optional and i >= 2
        size = np.concatenate([rng.uniform(0.0, 1.0, 5), [0.0], [1.2] if opt else []])
        options = tuple(
            BlockOption(
                name=str(j),
                acc_drop=0.0 if j == 5 else float(s * rng.uniform(0.5, 3.0) - 0.2),
                flops=0.0 if j == 5 else float(-rng.uniform(0.0, 5e7)),
                costs={"latency_ms": 0.0 if j == 5 else float(-s * rng.uniform(0.5, 3.0))},
            )
            for j, s in enumerate(size)
        )
        label = labels[i - 2] if opt else None
        nodes.append(BlockNode(f"n{i}", options, 5, label, 6 if opt else None))
    return BlockTable(
        base_accuracy=80.0,
        base_flops=3e8,
        base_costs={"latency_ms": 20.0},
        mean_flops=1.5e8,
        nodes=tuple(nodes),
    )


def table_brute_force(table: BlockTable, constraints, flops_correction: bool):
    """All monotone choice vectors, scored by the table's own formula (vectorised)."""
    grid = np.array(list(itertools.product(*[range(len(n.options)) for n in table.nodes])))
    absent = np.array([n.absent if n.optional else -1 for n in table.nodes])
    ok = np.ones(len(grid), bool)
    for label in {n.depth_label for n in table.nodes if n.optional}:
        chain = [i for i, n in enumerate(table.nodes) if n.depth_label == label]
        for a, b in itertools.pairwise(chain):
            ok &= ~((grid[:, a] == absent[a]) & (grid[:, b] != absent[b]))

    def total(column: str) -> np.ndarray:
        m = [np.array([o.value(column) for o in n.options]) for n in table.nodes]
        return sum(m[i][grid[:, i]] for i in range(len(m)))

    for name, bound in constraints.items():
        ok &= table.base_value(name) + total(name) <= bound
    drop = total("acc_drop")
    if flops_correction:
        acc = table.base_accuracy - drop * table.mean_flops / (table.base_flops + total("flops"))
    else:
        acc = table.base_accuracy - drop
    acc[~ok] = -np.inf
    order = np.argsort(-acc, kind="stable")
    return grid, acc, order


@pytest.mark.parametrize("engine", ["milp", "dp"])
@pytest.mark.parametrize("flops_correction", [True, False])
@pytest.mark.parametrize("optional", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_solver_matches_brute_force_over_the_formula(engine, flops_correction, optional, seed):
    table = random_table(seed, optional)
    settings = [{"latency_ms": 13.0}, {"latency_ms": 16.0}, {"flops": 2.2e8}, {}]
    if engine == "milp":
        settings.append({"latency_ms": 17.0, "flops": 2.2e8})
    for constraints in settings:
        _, acc, order = table_brute_force(table, constraints, flops_correction)
        choices, predicted, costs = solve_block_table(
            table, constraints, flops_correction, engine=engine
        )
        assert predicted == pytest.approx(acc[order[0]], abs=1e-9)
        assert predicted == pytest.approx(table.predict_accuracy(choices, flops_correction))
        for name, bound in constraints.items():
            assert costs[name] <= bound + 1e-9


@pytest.mark.parametrize("labels", ["aab", "aba"])
def test_engines_agree_with_several_depth_decisions(labels: str) -> None:
    table = random_table(4, optional=True, labels=labels)
    for constraints in ({"latency_ms": 13.0}, {"flops": 2.0e8}, {}):
        _, acc, order = table_brute_force(table, constraints, True)
        for engine in ("dp", "milp"):
            _, predicted, _ = solve_block_table(table, constraints, True, engine=engine)
            assert predicted == pytest.approx(acc[order[0]], abs=1e-9)


def test_dp_engine_refuses_two_constraints() -> None:
    with pytest.raises(ValueError, match="at most one constraint"):
        solve_block_table(random_table(0, False), {"latency_ms": 17, "flops": 2e8}, engine="dp")


def test_the_correction_changes_the_optimum_of_these_tables() -> None:
    """Guards the test above: a solver ignoring F̄ / F(N) would fail it."""
    differ = 0
    for seed in (0, 1, 2):
        table = random_table(seed, optional=True)
        for bound in (13.0, 16.0):
            _, _, corrected = table_brute_force(table, {"latency_ms": bound}, True)
            _, _, plain = table_brute_force(table, {"latency_ms": bound}, False)
            differ += int(corrected[0] != plain[0])
    assert differ >= 3


def test_top_k_are_the_k_best_predicted() -> None:
    table = random_table(3, optional=True)
    solver = BlockTableSolver(table)
    _, acc, order = table_brute_force(table, {"latency_ms": 15.0}, True)
    found = []
    for _ in range(4):
        found.append(solver.solve({"latency_ms": 15.0}, True, exclude=[s.choices for s in found]))
    assert [s.accuracy for s in found] == pytest.approx(list(acc[order[:4]]), abs=1e-9)
    assert len({s.choices for s in found}) == 4


@pytest.mark.parametrize("groups", [(4, 8), (1, 1)])
@pytest.mark.parametrize("flops_correction", [True, False])
def test_reduced_milp_is_exact_when_highs_gets_many_groups(
    monkeypatch: pytest.MonkeyPatch, groups: tuple[int, int], flops_correction: bool
) -> None:
    """Small group caps leave HiGHS several groups and rows across them; top-3 with exclusions
    and two constraints must still be the brute-force order."""
    monkeypatch.setattr(blockreduce, "CAP", groups[0])
    monkeypatch.setattr(blockreduce, "BIG", groups[1])
    for seed, labels in ((0, "aba"), (2, "aab")):
        table = random_table(seed, optional=True, labels=labels)
        solver = BlockTableSolver(table, engine="milp")
        for constraints in ({"latency_ms": 14.0, "flops": 2.0e8}, {"latency_ms": 16.0}):
            _, acc, order = table_brute_force(table, constraints, flops_correction)
            found: list = []
            for k in range(3):
                sol = solver.solve(constraints, flops_correction, [s.choices for s in found])
                assert sol.accuracy == pytest.approx(acc[order[k]], abs=1e-9), (seed, k)
                found.append(sol)


def test_reduction_keeps_the_optimum_of_random_programs() -> None:
    """Rows of any sign, with and without an incumbent, against enumeration."""
    rng = np.random.default_rng(0)
    sizes = [4, 3, 5, 4, 3]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    grid = np.array(list(itertools.product(*[range(k) for k in sizes]))) + offsets[:-1]
    infeasible = 0
    for _ in range(16):
        c = rng.normal(size=offsets[-1])
        a = rng.normal(size=(3, offsets[-1]))
        b = rng.normal(size=3) * 0.5
        prog = blockreduce.Program(c, a, b, offsets)
        ok = np.all(a[:, grid].sum(axis=2) <= b[:, None], axis=0)
        values = np.where(ok, c[grid].sum(axis=1), np.inf)
        x, _ = blockreduce.solve_reduced(prog)
        if not ok.any():
            infeasible += 1
            assert x is None
            continue
        assert float(c @ x) == pytest.approx(values.min(), abs=1e-9)
        incumbent = np.zeros(offsets[-1])
        incumbent[grid[rng.choice(np.flatnonzero(ok))]] = 1.0
        y, _ = blockreduce.solve_reduced(prog, incumbent)
        assert float(c @ y) == pytest.approx(values.min(), abs=1e-9)
        assert np.all(a @ y <= b + 1e-9)
    assert 0 < infeasible < 16


def test_warm_starts_are_feasible_networks_no_worse_after_swaps() -> None:
    rng = np.random.default_rng(1)
    offsets = np.array([0, 4, 7, 12, 16])
    found = 0
    for _ in range(20):
        prog = blockreduce.Program(
            rng.normal(size=16), rng.normal(size=(2, 16)), rng.normal(size=2), offsets
        )
        lp = blockreduce.lp_bound(prog)
        x = None if lp is None else blockreduce.round_lp(prog, lp)
        if x is None:
            continue
        found += 1
        assert np.all(np.add.reduceat(x, offsets[:-1]) == 1)
        assert np.all(prog.a @ x <= prog.b + 1e-9)
        start = np.zeros(16)
        start[
            offsets[:-1]
            + [np.argmin(prog.a[:, lo:hi].sum(0)) for lo, hi in itertools.pairwise(offsets)]
        ] = 1.0
        if np.all(prog.a @ start <= prog.b):
            better = blockreduce.improve(prog, start)
            assert float(prog.c @ better) <= float(prog.c @ start)
            assert np.all(prog.a @ better <= prog.b + 1e-9)
    assert found >= 5


def test_infeasible_constraint_names_it_and_the_smallest_value() -> None:
    table = random_table(0, optional=True)
    _, acc, order = table_brute_force(table, {}, False)
    grid = np.array(list(itertools.product(*[range(len(n.options)) for n in table.nodes])))
    smallest = min(
        table.predict_cost(list(g), "latency_ms")
        for g, a in zip(grid, table_brute_force(table, {}, False)[1], strict=True)
        if np.isfinite(a)
    )
    with pytest.raises(InfeasibleConstraintError) as err:
        solve_block_table(table, {"latency_ms": smallest - 0.5})
    assert "latency_ms" in str(err.value)
    assert f"smallest achievable latency_ms is {smallest:g}" in str(err.value)


def test_jointly_infeasible_constraints_are_reported() -> None:
    table = random_table(0, optional=False)
    solver = BlockTableSolver(table)
    lat, flops = solver.min_cost("latency_ms")[0], solver.min_cost("flops")[0]
    _, acc, _ = table_brute_force(table, {"latency_ms": lat + 1e-6, "flops": flops + 1e-6}, False)
    if np.isfinite(acc).any():
        pytest.skip("the two minima happen to coincide in this table")
    with pytest.raises(InfeasibleConstraintError, match="cannot be met together"):
        solver.solve({"latency_ms": lat + 1e-6, "flops": flops + 1e-6})


def test_problem_constraint_infeasible_raises_in_run() -> None:
    problem = toy_problem({"latency_ms": 0.5})
    with pytest.raises(InfeasibleConstraintError, match="latency_ms <= 0.5 cannot be met"):
        MathNAS(quality_sample=0).run(problem, np.random.default_rng(0))


def test_budget_sweep_gives_a_monotone_predicted_front() -> None:
    problem = toy_problem({"latency_ms": 8.0}, optional=(3, 4))
    extras = MathNAS(budgets=[0.5, 4.0, 6.0, 8.0, 10.0], quality_sample=0).run(
        problem, np.random.default_rng(0)
    )
    front = extras["predicted_front"]
    assert "infeasible" in front[0]
    preds = [e["predicted_accuracy"] for e in front[1:]]
    assert preds == sorted(preds)
    assert [e["constraints"]["latency_ms"] for e in front[1:]] == [4.0, 6.0, 8.0, 10.0]
    assert len(extras["solve_seconds"]) == 5


def test_too_small_budget_names_the_validations_needed() -> None:
    problem = toy_problem({"latency_ms": 6.0}, budget=10)
    with pytest.raises(ProblemError, match=r"needs 2\d validations"):
        MathNAS().run(problem, np.random.default_rng(0))


def test_budget_is_never_exceeded_and_quality_is_skipped_when_unaffordable() -> None:
    problem = toy_problem({"latency_ms": 6.0}, budget=30)
    extras = MathNAS(top_k=5, quality_sample=50).run(problem, np.random.default_rng(0))
    assert problem.used <= 30
    assert "skipped" in extras["predictor_quality"]


def test_predictor_quality_when_affordable() -> None:
    problem = toy_problem({"latency_ms": 6.0}, budget=200)
    extras = MathNAS(flops_correction=False, quality_sample=40).run(
        problem, np.random.default_rng(0)
    )
    quality = extras["predictor_quality"]
    assert quality["samples"] == 40
    assert quality["spearman"] == pytest.approx(1.0) and quality["kendall"] == pytest.approx(1.0)
    assert quality["mae"] < 1e-9


def test_predictor_checks_are_held_out_of_the_result() -> None:
    """MathNAS reports MathNAS: the random subnets that score its predictor cost budget but
    are in no front and no best row; they have a table of their own."""
    from search.results import SearchResult

    problem = toy_problem({"latency_ms": 6.0}, budget=200)
    used_by_search = MathNAS(quality_sample=0).run(problem, np.random.default_rng(0))
    searched = problem.used
    problem = toy_problem({"latency_ms": 6.0}, budget=200)
    extras = MathNAS(quality_sample=40).run(problem, np.random.default_rng(0))
    result = SearchResult.from_problem(problem, "mathnas", 0, extras)
    assert len(result.rows) == searched and used_by_search["table_validations"] <= searched
    history = {r.arch_id for r in result.rows}
    held_only = {r.arch_id for r in result.held_out} - history
    assert len(result.held_out) == 40 and held_only
    assert problem.used == searched + len(held_only)  # they cost budget
    assert not held_only & {r.arch_id for r in result.pareto}
    assert not held_only & {r.arch_id for r in result.best.values() if r is not None}
    assert len(result.hypervolume) == len(result.rows)


def test_held_out_validations_are_reused_not_paid_twice() -> None:
    problem = toy_problem(None, budget=5)
    archs = [problem.space.sample(np.random.default_rng(i)) for i in range(3)]
    problem.evaluate_held_out(archs[:2])
    assert problem.used == 2 and not problem.history
    problem.evaluate(archs)  # two already paid for, one new
    assert problem.used == 3 and len(problem.history) == 3 and len(problem.held_out) == 2


def test_loaded_table_costs_no_validations(tmp_path: Path) -> None:
    first = toy_problem({"latency_ms": 6.0}, optional=(3, 4))
    measure_block_table(first).save(tmp_path / "table.yaml")
    problem = toy_problem({"latency_ms": 6.0}, optional=(3, 4))
    extras = MathNAS(block_table=str(tmp_path / "table.yaml"), quality_sample=0).run(
        problem, np.random.default_rng(0)
    )
    assert extras["table_validations"] == 0
    assert problem.used == 1  # only the chosen network


def test_a_table_with_its_nodes_in_another_order_solves_the_same(tmp_path: Path) -> None:
    table = measure_block_table(toy_problem(None, optional=(3, 4)))
    shuffled = table.to_dict()
    shuffled["nodes"] = shuffled["nodes"][::-1]
    BlockTable.from_dict(shuffled).save(tmp_path / "shuffled.yaml")
    table.save(tmp_path / "table.yaml")
    picks = []
    for name in ("table.yaml", "shuffled.yaml"):
        problem = toy_problem({"latency_ms": 6.0}, optional=(3, 4))
        extras = MathNAS(block_table=str(tmp_path / name), quality_sample=0).run(
            problem, np.random.default_rng(0)
        )
        picks.append(extras["predicted_front"][0]["choices"])
    assert picks[0] == picks[1]
    missing = table.to_dict()
    missing["nodes"] = missing["nodes"][1:]
    BlockTable.from_dict(missing).save(tmp_path / "missing.yaml")
    with pytest.raises(BlockTableError, match="space nodes it lacks: n0"):
        MathNAS(block_table=str(tmp_path / "missing.yaml"), quality_sample=0).run(
            toy_problem({"latency_ms": 6.0}, optional=(3, 4)), np.random.default_rng(0)
        )


def test_clip_drops_solves_the_clipped_table_and_reports_the_measured_one(
    tmp_path: Path,
) -> None:
    table = measure_block_table(toy_problem(None, optional=(3, 4)))
    noisy = table.to_dict()
    for node in noisy["nodes"]:  # the smallest block of every node "measured" better
        node["options"][0]["acc_drop"] = -0.5
    BlockTable.from_dict(noisy).save(tmp_path / "noisy.yaml")
    bound = {"latency_ms": 6.0}
    picks = {}
    for clip in (False, True):
        problem = toy_problem(bound, optional=(3, 4))
        extras = MathNAS(
            block_table=str(tmp_path / "noisy.yaml"), clip_drops=clip, quality_sample=0
        ).run(problem, np.random.default_rng(0))
        assert extras["block_table"]["nodes"][0]["options"][0]["acc_drop"] == -0.5
        picks[clip] = extras["predicted_front"][0]["choices"]
    clipped = BlockTable.from_dict(noisy).clipped_drops()
    assert picks[True] == solve_block_table(clipped, bound)[0]
    assert picks[False] == solve_block_table(BlockTable.from_dict(noisy), bound)[0]
    assert picks[True] != picks[False]


def test_same_seed_same_result() -> None:
    runs = []
    for _ in range(2):
        problem = toy_problem({"latency_ms": 6.0})
        extras = MathNAS(context="averaged", num_contexts=3, quality_sample=10).run(
            problem, np.random.default_rng(5)
        )
        runs.append((extras["predicted_front"][0]["arch_id"], extras["predictor_quality"]))
    assert runs[0] == runs[1]


def scaled_problem(constraints: dict[str, float]) -> Problem:
    """Costs and accuracy multiplied by a resolution-like last node: not additive."""
    rng = np.random.default_rng(7)
    decisions = [Decision(f"n{i}", tuple(range(4))) for i in range(4)]
    decisions.append(Decision("res", (1, 2, 3)))
    space = SearchSpace("scaled", decisions)
    # the average-FLOPs context sits near the big blocks, so small blocks at a low resolution
    # are predicted too cheap
    macs = rng.uniform(5e6, 2e7, (4, 1)) * np.array([0.1, 0.9, 0.95, 1.0])
    gain = np.sort(rng.uniform(0.0, 3.0, (4, 4)), axis=1)
    factor = {1: 0.4, 2: 0.7, 3: 1.0}

    def validate(archs):
        return [
            {"accuracy": 60 + 4 * a["res"] + sum(gain[i, a[f"n{i}"]] for i in range(4))}
            for a in archs
        ]

    def cost(a: Arch) -> dict[str, float]:
        total = 2e6 + sum(macs[i, a[f"n{i}"]] for i in range(4))
        return {"macs": factor[a["res"]] * total, "latency_ms": factor[a["res"]] * total / 1e7}

    return Problem(space, ("accuracy", "macs"), constraints, validate, cost, 1000)


def test_picks_meet_real_costs_when_costs_do_not_add_up() -> None:
    budgets = [5e6, 1e7, 2e7, 3e7, 4e7]
    broken = 0
    for repair in (0, 10):
        problem = scaled_problem({"macs": 6e7})
        strategy = MathNAS(
            budgets=budgets, repair_costs=repair, quality_sample=0, flops_correction=False
        )
        extras = strategy.run(problem, np.random.default_rng(0))
        for entry in extras["predicted_front"]:
            if "arch" not in entry:
                continue
            real = problem.cost(problem.space.arch(entry["arch"]))["macs"]
            if repair:
                assert real <= entry["constraints"]["macs"]
            else:
                broken += real > entry["constraints"]["macs"]
    assert broken >= 1  # without calibration the additive model does break a bound here


def test_the_flops_correction_keeps_predicted_flops_above_the_floor() -> None:
    """Additive FLOPs go negative on this space: the measured table's min_flops (the smallest
    real FLOPs) keeps the fractional program defined; a table without it is refused."""
    problem = scaled_problem({"macs": 3e7})
    extras = MathNAS(quality_sample=0).run(problem, np.random.default_rng(0))
    table = BlockTable.from_dict(extras["block_table"])
    assert table.min_flops is not None
    assert BlockTableSolver(table).min_cost("flops")[0] <= 0 < table.min_flops
    assert extras["predicted_front"][0]["predicted_costs"]["flops"] >= table.min_flops
    grid, _, _ = table_brute_force(table, {}, False)
    flops = np.array([table.predict_cost(list(g), "flops") for g in grid])
    macs = np.array([table.predict_cost(list(g), "macs") for g in grid])
    drop = table.base_accuracy - np.array([table.predict_accuracy(list(g), False) for g in grid])
    acc = table.base_accuracy - drop * table.mean_flops / np.maximum(flops, 1e-9)
    unconstrained = acc.copy()
    acc[(flops < table.min_flops) | (macs > 3e7)] = -np.inf
    unconstrained[flops < table.min_flops] = -np.inf
    for engine in ("auto", "milp"):
        _, predicted, costs = solve_block_table(table, {"macs": 3e7}, True, engine=engine)
        assert predicted == pytest.approx(acc.max(), abs=1e-9)
        assert costs["flops"] >= table.min_flops
        # no user constraint: the floor is then the only row
        _, predicted, costs = solve_block_table(table, {}, True, engine=engine)
        assert predicted == pytest.approx(unconstrained.max(), abs=1e-9)
        assert costs["flops"] >= table.min_flops
    bare = BlockTable.from_dict({k: v for k, v in table.to_dict().items() if k != "min_flops"})
    with pytest.raises(BlockTableError, match="flops_correction=false"):
        solve_block_table(bare, {"macs": 3e7})
    with pytest.raises(ValueError, match="min_flops"):
        solve_block_table(table, {"macs": 3e7}, engine="dp")
