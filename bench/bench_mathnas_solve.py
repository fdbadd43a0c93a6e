"""Seconds per MathNAS solve (one constraint setting) on block tables of real-network shape.

- MobileNetV3 (OFA): 20 layer nodes × 9 blocks (kernel {3,5,7} × expand {3,4,6}); layers 3 and 4
  of each of the 5 units are optional (an "absent" option, monotone depth). Target ≤ 0.1 s.
- HAT Transformer: encoder and decoder embed {512, 640}; 6 encoder layers × (FFN 3 × heads 2);
  decoder layer 1 always present and 5 optional layers × (FFN 3 × heads 2 × enc-dec attention
  to the last 1/2/3 encoder layers). Target ≤ 1 s.

The numbers in the tables are random but plausible (bigger blocks cost more and drop less).
Each constraint setting is solved with and without the FLOPs correction (Dinkelbach), by both
engines: the Pareto dynamic program (`dp`, one constraint) and HiGHS (`milp`, any number,
after the exact reductions of `search.mathnas.reduce`); the two always agree on the optimum
(checked here). Then the same bounds with a second constraint (params ≤ 70 % of the base net's),
`milp` only. Wall and CPU seconds are printed (CPU time is the fairer figure on a shared
machine).

    python bench/bench_mathnas_solve.py [--points 8] [--repeats 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from search.mathnas.solve import BlockTableSolver, InfeasibleConstraintError  # noqa: E402
from search.mathnas.table import BlockNode, BlockOption, BlockTable  # noqa: E402


def _node(
    name: str,
    rng: np.random.Generator,
    size: np.ndarray,
    scale: dict[str, float],
    absent: bool,
    depth_label: str | None = None,
) -> BlockNode:
    """Options of relative size `size` (last = 1, the reference); smaller costs less, drops more."""
    sizes = list(size) + ([0.0] if absent else [])
    options = []
    for j, s in enumerate(sizes):
        gap = 1.0 - s
        noise = rng.uniform(0.8, 1.2, 4)
        macs = float(-scale["macs"] * gap * noise[1]) if gap else 0.0
        options.append(
            BlockOption(
                name="absent" if absent and j == len(sizes) - 1 else str(j),
                acc_drop=float(scale["acc"] * gap**0.7 * noise[0]) if gap else 0.0,
                flops=macs,
                costs={
                    "macs": macs,
                    "latency_ms": float(-scale["lat"] * gap * noise[2]) if gap else 0.0,
                    "params": float(-scale["params"] * gap * noise[3]) if gap else 0.0,
                },
            )
        )
    return BlockNode(
        name,
        tuple(options),
        reference=len(size) - 1,
        depth_label=depth_label if absent else None,
        absent=len(sizes) - 1 if absent else None,
    )


def _table(nodes: list[BlockNode], base: dict[str, float], acc: float) -> BlockTable:
    return BlockTable(
        base_accuracy=acc,
        base_flops=base["macs"],
        base_costs=base,
        mean_flops=0.6 * base["macs"],
        nodes=tuple(nodes),
    )


def mobilenetv3_table(seed: int) -> BlockTable:
    rng = np.random.default_rng(seed)
    grid = np.array([k * k * e for k in (3, 5, 7) for e in (3, 4, 6)], dtype=float)
    size = np.sort(grid / grid.max())
    nodes = []
    for u in range(1, 6):
        scale = {"acc": 0.6, "macs": 1.2e7 * (1 + 0.2 * u), "lat": 0.9, "params": 1.5e5 * u}
        for b in range(1, 5):
            nodes.append(_node(f"s{u}_b{b}", rng, size, scale, b >= 3, f"s{u}_depth"))
    base = {"macs": 5.95e8, "latency_ms": 40.0, "params": 7.7e6}
    return _table(nodes, base, 80.0)


def transformer_table(seed: int) -> BlockTable:
    rng = np.random.default_rng(seed)
    ffn_heads = np.array([f * (1 + 0.1 * h) for f in (1024, 2048, 3072) for h in (4, 8)])
    layer = np.sort(ffn_heads / ffn_heads.max())
    cross = np.array(
        [
            f * (1 + 0.1 * h) * (1 + 0.15 * c)
            for f in (1024, 2048, 3072)
            for h in (4, 8)
            for c in (1, 2, 3)
        ]
    )
    dec = np.sort(cross / cross.max())
    embed = np.array([512 / 640, 1.0])
    scale = {"acc": 0.5, "macs": 1.2e8, "lat": 12.0, "params": 4e6}
    nodes = [
        _node("enc_embed", rng, embed, {**scale, "acc": 1.0, "macs": 4e8}, False),
        _node("dec_embed", rng, embed, {**scale, "acc": 1.0, "macs": 4e8}, False),
    ]
    nodes += [_node(f"enc_l{i}", rng, layer, scale, False) for i in range(1, 7)]
    nodes.append(_node("dec_l1", rng, dec, {**scale, "lat": 40.0}, False))
    nodes += [
        _node(f"dec_l{i}", rng, dec, {**scale, "lat": 40.0, "acc": 0.8}, True, "dec_layers")
        for i in range(2, 7)
    ]
    base = {"macs": 2.2e9, "latency_ms": 450.0, "params": 7.6e7}
    return _table(nodes, base, 28.5)


def _timed(solver: BlockTableSolver, constraints: dict[str, float], correction: bool, n: int):
    walls, cpus = [], []
    for _ in range(n):
        w0, c0 = time.perf_counter(), time.process_time()
        sol = solver.solve(constraints, correction)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), sol


def bench(name: str, table: BlockTable, metric: str, points: int, repeats: int) -> None:
    solvers = {e: BlockTableSolver(table, time_limit=60.0, engine=e) for e in ("dp", "milp")}
    lo = solvers["dp"].min_cost(metric)[0]
    hi = table.base_value(metric)
    bounds = np.linspace(lo + 0.05 * (hi - lo), hi, points)
    print(
        f"\n{name}: {len(table.nodes)} nodes, {sum(table.num_options)} binaries; "
        f"{metric} from {lo:.4g} to {hi:.4g}"
    )
    print(f"{'':>10} {'cpu s per solve (wall in brackets)':^62}")
    print(
        f"{'bound':>10} {'dp plain':>14} {'dp corrected':>15} {'milp plain':>15} "
        f"{'milp corrected':>15} {'acc':>7}"
    )
    worst: dict[tuple[str, bool], float] = {}
    for bound in bounds:
        row, accs = [], set()
        for engine in ("dp", "milp"):
            for corr in (False, True):
                wall, cpu, sol = _timed(solvers[engine], {metric: float(bound)}, corr, repeats)
                worst[engine, corr] = max(worst.get((engine, corr), 0.0), cpu)
                row.append(f"{cpu:.4f} ({wall:.3f})")
                if corr:
                    accs.add(round(sol.accuracy, 9))
        assert len(accs) == 1, f"engines disagree at {bound}: {accs}"
        print(f"{bound:10.4g} " + " ".join(f"{r:>15}" for r in row) + f" {accs.pop():7.3f}")
    print(f"two constraints ({metric} and params <= 70 % of the base net's), milp:")
    print(f"{'bound':>10} {'plain':>15} {'corrected':>15} {'MILPs':>6} {'acc':>7}")
    params = table.base_value("params") * 0.7
    for bound in bounds:
        both = {metric: float(bound), "params": params}
        row = []
        try:
            for corr in (False, True):
                wall, cpu, sol = _timed(solvers["milp"], both, corr, repeats)
                worst["two", corr] = max(worst.get(("two", corr), 0.0), cpu)
                row.append(f"{cpu:.4f} ({wall:.3f})")
        except InfeasibleConstraintError:
            print(f"{bound:10.4g} {'infeasible':>15}")
            continue
        print(
            f"{bound:10.4g} " + " ".join(f"{r:>15}" for r in row) + f" {sol.iterations:6d}"
            f" {sol.accuracy:7.3f}"
        )
    print(
        f"slowest solve, cpu s (median of {repeats}): "
        + ", ".join(
            f"{'milp two' if e == 'two' else e} {'corrected' if c else 'plain'} {v:.4f}"
            for (e, c), v in worst.items()
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tables = [
        ("MobileNetV3 (target <= 0.1 s)", mobilenetv3_table(args.seed)),
        ("HAT Transformer (target <= 1 s)", transformer_table(args.seed)),
    ]
    for name, table in tables:
        bench(name, table, "latency_ms", args.points, args.repeats)


if __name__ == "__main__":
    main()
