"""The MathNAS block table: YAML round trip, clear errors, prediction, counted measurement."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from search.mathnas.measure import measure_block_table, plan_block_table
from search.mathnas.table import BlockTable, BlockTableError
from search.problem import Problem, ProblemError
from supernet.space import Arch
from tests.search._strategy_toys import layered_space


def toy_problem(
    optional: tuple[int, ...] = (),
    n_nodes: int = 4,
    n_opts: int = 3,
    interaction: float = 0.0,
    budget: int = 10_000,
    seed: int = 0,
) -> Problem:
    """Accuracy = 90 − Σ drop[i, choice_i] (+ an optional pairwise term); additive costs."""
    rng = np.random.default_rng(seed)
    space = layered_space(n_nodes, n_opts, optional)
    drop = rng.uniform(0, 3, (n_nodes, n_opts + 1))
    macs = np.concatenate([rng.uniform(1e6, 2e7, (n_nodes, n_opts)), np.zeros((n_nodes, 1))], 1)
    lat = np.concatenate([rng.uniform(0.1, 2, (n_nodes, n_opts)), np.zeros((n_nodes, 1))], 1)
    idx = np.arange(n_nodes)

    def validate(archs):
        out = []
        for a in archs:
            c = space.node_choices(a)
            acc = 90.0 - drop[idx, c].sum() + interaction * np.sin(np.dot(c, idx + 1))
            out.append({"accuracy": float(acc)})
        return out

    def cost(a: Arch) -> dict[str, float]:
        c = space.node_choices(a)
        return {"macs": 5e6 + macs[idx, c].sum(), "latency_ms": 1.0 + lat[idx, c].sum()}

    return Problem(space, ("accuracy", "latency_ms"), None, validate, cost, budget)


def small_table() -> dict:
    opt = {"acc_drop": 0.0, "flops": 0.0, "latency_ms": 0.0}
    return {
        "metric": "accuracy",
        "flops_metric": "macs",
        "mean_flops": 100.0,
        "base": {"accuracy": 80.0, "flops": 200.0, "latency_ms": 10.0},
        "columns": ["latency_ms"],
        "nodes": [
            {
                "name": "a",
                "reference": 1,
                "options": [
                    {"name": "small", "acc_drop": 2.0, "flops": -50.0, "latency_ms": -3.0},
                    {"name": "big", **opt},
                ],
            },
            {
                "name": "b",
                "reference": 0,
                "depth_label": "d",
                "absent": 1,
                "options": [
                    {"name": "big", **opt},
                    {"name": "absent", "acc_drop": 4.0, "flops": -100.0, "latency_ms": -5.0},
                ],
            },
        ],
    }


def test_yaml_round_trip(tmp_path: Path) -> None:
    problem = toy_problem(optional=(2, 3))
    table = measure_block_table(problem, rng=np.random.default_rng(1))
    table.save(tmp_path / "t" / "table.yaml")
    loaded = BlockTable.load(tmp_path / "t" / "table.yaml")
    assert loaded.to_dict() == table.to_dict()
    for choices in ([0, 1, 2, 3], [2, 2, 3, 3], [1, 0, 1, 3]):
        assert loaded.predict_accuracy(choices) == table.predict_accuracy(choices)
        assert loaded.predict_cost(choices, "latency_ms") == table.predict_cost(
            choices, "latency_ms"
        )


def test_prediction_follows_the_formula() -> None:
    table = BlockTable.from_dict(small_table())
    # Acc = 80 − (2 + 4) · F̄ / F(N), F(N) = 200 − 50 − 100 = 50
    assert table.predict_accuracy([0, 1]) == pytest.approx(80.0 - 6.0 * 100.0 / 50.0)
    assert table.predict_accuracy([0, 1], flops_correction=False) == pytest.approx(74.0)
    assert table.predict_cost([0, 1], "latency_ms") == pytest.approx(2.0)
    assert table.predict_cost([1, 0], "flops") == pytest.approx(200.0)
    with pytest.raises(BlockTableError, match="no cost column 'energy_mj'"):
        table.predict_cost([1, 0], "energy_mj")


def test_clipped_drops_zero_only_the_negative_ones() -> None:
    data = small_table()
    data["nodes"][0]["options"][0]["acc_drop"] = -1.5  # the small block measured better
    table = BlockTable.from_dict(data)
    clipped = table.clipped_drops()
    assert [o.acc_drop for o in clipped.nodes[0].options] == [0.0, 0.0]
    assert [o.acc_drop for o in clipped.nodes[1].options] == [0.0, 4.0]
    assert table.nodes[0].options[0].acc_drop == -1.5  # the measured table is unchanged
    # a negative drop scaled by F̄ / F(N) predicts the small network above the base accuracy
    assert table.predict_accuracy([0, 0]) == pytest.approx(80.0 + 1.5 * 100.0 / 150.0)
    assert clipped.predict_accuracy([0, 0]) == pytest.approx(80.0)
    assert clipped.predict_cost([0, 1], "latency_ms") == table.predict_cost([0, 1], "latency_ms")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["nodes"][0]["options"][0].pop("latency_ms"), "missing column 'latency_ms'"),
        (lambda d: d["nodes"][1].update(options=[]), "node 'b' has no options"),
        (lambda d: d["nodes"][0]["options"][1].update(energy_mj=1.0), "inconsistent columns"),
        (lambda d: d["nodes"][0]["options"][1].update(acc_drop=0.5), "reference option must"),
        (lambda d: d.pop("mean_flops"), "missing 'mean_flops'"),
        (lambda d: d["base"].pop("latency_ms"), "base is missing column 'latency_ms'"),
        (lambda d: d["nodes"][0].update(reference=5), "reference 5 is not an option"),
        (lambda d: d["nodes"][1].pop("absent"), "depth_label and absent must be given together"),
        (lambda d: d["nodes"][0]["options"][0].update(acc_drop="x"), "must be a number"),
        (lambda d: d.update(nodes=[]), "has no nodes"),
    ],
)
def test_bad_tables_fail_clearly(edit, message: str) -> None:
    data = small_table()
    edit(data)
    with pytest.raises(BlockTableError, match=message):
        BlockTable.from_dict(data)


def test_bad_yaml_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "base: {accuracy: 1, flops: 2}\nmean_flops: 1\nnodes: [{name: a, options: []}]\n"
    )
    with pytest.raises(BlockTableError, match="bad.yaml: node 'a' has no options"):
        BlockTable.load(path)
    with pytest.raises(BlockTableError, match="cannot read"):
        BlockTable.load(tmp_path / "missing.yaml")


def test_measurement_uses_exactly_the_stated_validations() -> None:
    problem = toy_problem(n_nodes=4, n_opts=3)
    contexts, archs = plan_block_table(problem)
    ctx = contexts[0]
    # N^avg, one changed node at a time (n_i − 1 each), and Ñ unless it is among them
    ref_is_one_swap = sum(c != 2 for c in ctx) <= 1
    assert len(archs) == 1 + 4 * 2 + (0 if ref_is_one_swap else 1)
    measure_block_table(problem)
    assert problem.used == len(archs)
    measure_block_table(problem)  # measured again: nothing new is validated
    assert problem.used == len(archs)


def test_measurement_refuses_a_too_small_budget() -> None:
    problem = toy_problem(optional=(2, 3), budget=5)
    needed = len(plan_block_table(problem)[1])
    with pytest.raises(ProblemError, match=f"needs {needed} validations"):
        measure_block_table(problem)
    assert problem.used == 0


@pytest.mark.parametrize("context", ["average_flops", "averaged"])
def test_additive_problems_are_predicted_exactly_even_with_absent_layers(context: str) -> None:
    problem = toy_problem(optional=(1, 2, 3), n_nodes=4)
    table = measure_block_table(problem, context=context, num_contexts=5)
    space = problem.space
    for choices in itertools.product(*[range(n.num_options) for n in space.nodes]):
        arch = space.compose(list(choices), base=space.largest())
        truth = problem._validate([arch])[0]["accuracy"]
        used = space.node_choices(arch)
        assert table.predict_accuracy(used, flops_correction=False) == pytest.approx(truth)
        assert table.predict_cost(used, "latency_ms") == pytest.approx(
            problem.cost(arch)["latency_ms"]
        )


def test_averaged_context_is_the_papers_eq3_over_all_contexts() -> None:
    problem = toy_problem(n_nodes=3, n_opts=3, interaction=1.0)
    table = measure_block_table(problem, context="averaged", contexts_fraction=1.0)
    space = problem.space

    def acc(choices) -> float:
        return problem._validate([space.compose(list(choices))])[0]["accuracy"]

    for i in range(3):
        for j in range(3):
            drops = []
            for ctx in itertools.product(range(3), repeat=3):
                ref, alt = list(ctx), list(ctx)
                ref[i], alt[i] = 2, j
                drops.append(acc(ref) - acc(alt))
            assert table.nodes[i].options[j].acc_drop == pytest.approx(np.mean(drops))
    assert table.meta["contexts"] == 27


def test_averaged_context_that_cannot_be_paid_fails_before_validating() -> None:
    problem = toy_problem(n_nodes=4, n_opts=3, budget=20)
    with pytest.raises(ProblemError, match="draws 81 contexts"):
        measure_block_table(problem, context="averaged", contexts_fraction=1.0)
    assert problem.used == 0
