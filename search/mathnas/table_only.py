"""Solve a saved MathNAS block table alone: no supernet, no data, no validation.

`python search.py strategy=mathnas strategy.block_table=FILE constraints.latency_ms=50`
(without `ckpt_path`) lands here: the table predicts every network, the exact solver picks the
best one under the constraints, and the chosen block of each node, the predicted quality and
the predicted costs are printed and written to `solution.yaml`. With a `ckpt_path` the same
table is used by the MathNAS strategy, which also validates its picks on the supernet.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from search.mathnas.solve import BlockTableSolver
from search.mathnas.table import BlockTable, BlockTableError

SOLUTION_YAML = "solution.yaml"


def table_constraints(
    table: BlockTable, absolute: Mapping[str, Any], relative: Mapping[str, Any]
) -> dict[str, float]:
    """Bounds on the table's columns; relative ones are fractions of the base (largest) net."""
    out = {k: float(v) for k, v in absolute.items() if v is not None}
    for name, fraction in relative.items():
        if fraction is None:
            continue
        bound = float(fraction) * table.base_value(name)
        out[name] = min(bound, out.get(name, bound))
    unknown = sorted(set(out) - {*table.columns, "flops"})
    if unknown:
        raise BlockTableError(
            f"constraints on {unknown}, which the block table does not hold; its columns are "
            f"{[*table.columns, 'flops']}"
        )
    return out


def solve_table_file(
    path: str | Path,
    constraints: Mapping[str, float],
    flops_correction: bool = True,
    top_k: int = 1,
    time_limit: float | None = 60.0,
    engine: str = "auto",
) -> dict[str, Any]:
    """The `top_k` best predicted networks of the table at `path` under `constraints`."""
    table = BlockTable.load(path)
    solver = BlockTableSolver(table, time_limit, engine)
    picks: list[dict[str, Any]] = []
    excluded: list[list[int]] = []
    for rank in range(top_k):
        sol = solver.solve(dict(constraints), flops_correction, excluded)
        excluded.append(list(sol.choices))
        picks.append({
            "rank": rank,
            "blocks": {node.name: node.options[j].name
                       for node, j in zip(table.nodes, sol.choices, strict=True)},
            "choices": list(sol.choices),
            f"predicted_{table.metric}": sol.accuracy,
            "predicted_costs": dict(sol.costs),
            "optimal": sol.optimal,
        })
    return {
        "block_table": str(path),
        "metric": table.metric,
        "flops_correction": flops_correction,
        "constraints": dict(constraints),
        "base": {table.metric: table.base_accuracy, **table.base_costs},
        "picks": picks,
        "solve_seconds": solver.seconds,
    }


def report_solution(solution: Mapping[str, Any], out_dir: Path, console: Console) -> Path:
    """Print the chosen blocks and predictions; write `solution.yaml` into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    metric = solution["metric"]
    bounds = ", ".join(f"{k} ≤ {v:g}" for k, v in solution["constraints"].items()) or "none"
    for pick in solution["picks"]:
        blocks = Table(title=f"MathNAS pick {pick['rank'] + 1} from {solution['block_table']} "
                             f"({bounds})")
        blocks.add_column("node")
        blocks.add_column("block")
        for node, block in pick["blocks"].items():
            blocks.add_row(node, block)
        console.print(blocks)
        predicted = Table(title="Predicted by the block table (not validated)")
        predicted.add_column(f"predicted {metric}", justify="right")
        for name in pick["predicted_costs"]:
            predicted.add_column(f"predicted {name}", justify="right")
        predicted.add_row(f"{pick[f'predicted_{metric}']:.4g}",
                          *(f"{v:.4g}" for v in pick["predicted_costs"].values()))
        console.print(predicted)
    path = out_dir / SOLUTION_YAML
    path.write_text(yaml.safe_dump(_plain(dict(solution)), sort_keys=False))
    return path


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.item() if hasattr(value, "item") else value
