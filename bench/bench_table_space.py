"""Every strategy on a generated 7-layer table (`space=table`): mean regret over seeds.

    python bench/bench_table_space.py                    # 10 seeds, budget 200, FLOPs ≤ 50 %
    python bench/bench_table_space.py --seeds 3 --strategies random layernas
    python bench/bench_table_space.py --write my.csv --seeds 0   # only write the table

The table has 7 decision columns `l1..l7` of 4 widths each (16, 24, 32, 48): 16,384 rows, one
per architecture. Its quality `acc` has real structure: per-layer effects that grow with width
at a diminishing rate, pairwise interactions between neighbouring layers and a few distant
pairs, and Gaussian noise (σ 0.1). `test_acc` is `acc` plus independent noise. Costs: `flops`
is additive (Σ kᵢ·wᵢ²); `lat` is not (products of neighbouring widths plus a term of the widest
layer, like a latency table). The written file runs as

    python search.py space=table space.path=my.csv 'space.decisions=[l1,l2,l3,l4,l5,l6,l7]' \\
      space.quality=acc '+space.costs={macs: flops, latency_ms: lat}' strategy=layernas \\
      relative_constraints.macs=0.5 budget=200

Each strategy runs at its shipped defaults (`conf/strategy/*.yaml`, printed) under FLOPs ≤ 50 %
of the largest network; regret = the table's best feasible `acc` − the best feasible `acc` the
strategy validated, in points.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from search.benchmarks import ColumnBenchmark, load_column_table  # noqa: E402

WIDTHS = (16, 24, 32, 48)
LAYERS = 7
STRATEGIES = ("random", "evolution", "nsga2", "linas", "mathnas", "layernas")
DECISIONS = [f"l{i + 1}" for i in range(LAYERS)]
BENCH: ColumnBenchmark | None = None  # loaded before the workers fork


def make_table(seed: int = 0) -> pd.DataFrame:
    """The 16,384-row table described in the module docstring."""
    rng = np.random.default_rng(seed)
    n = len(WIDTHS)
    # per-layer effect of each width: positive increments that shrink, scaled per layer
    steps = np.sort(rng.uniform(0.3, 1.0, (LAYERS, n - 1)), axis=1)[:, ::-1]
    effect = np.concatenate([np.zeros((LAYERS, 1)), np.cumsum(steps, axis=1)], axis=1)
    effect *= rng.uniform(0.8, 2.5, (LAYERS, 1))
    pairs = [(i, i + 1) for i in range(LAYERS - 1)] + [(0, 4), (1, 6), (2, 5)]
    inter = {p: rng.normal(0.0, 0.5, (n, n)) for p in pairs}
    k = np.array([4.0, 4.0, 2.0, 2.0, 1.0, 1.0, 0.5])  # spatial size per layer (flops weight)
    genes = np.array(list(itertools.product(range(n), repeat=LAYERS)))
    widths = np.asarray(WIDTHS, dtype=float)[genes]
    acc = 60.0 + effect[np.arange(LAYERS), genes].sum(axis=1)
    for (i, j), table in inter.items():
        acc += table[genes[:, i], genes[:, j]]
    acc += rng.normal(0.0, 0.1, len(genes))
    flops = (k * widths**2).sum(axis=1)
    neighbours = (k[:-1] * widths[:, :-1] * widths[:, 1:]).sum(axis=1)
    lat = 0.2 + neighbours / 2000.0 + widths.max(axis=1) ** 2 / 1500.0
    frame = pd.DataFrame(widths.astype(int), columns=DECISIONS)
    frame["acc"] = acc.round(4)
    frame["test_acc"] = (acc + rng.normal(0.0, 0.3, len(genes)) - 1.0).round(4)
    frame["flops"] = flops
    frame["lat"] = lat.round(5)
    return frame


def strategy_config(name: str) -> Any:
    """The shipped defaults of a strategy (MathNAS writes no block table here)."""
    cfg = OmegaConf.load(ROOT / "conf" / "strategy" / f"{name}.yaml")
    if "save_table" in cfg:
        cfg.save_table = None
    return cfg


def run_one(task: tuple[str, int, int, float]) -> dict[str, Any]:
    name, seed, budget, fraction = task
    assert BENCH is not None
    constraints = BENCH.relative({"macs": fraction})
    problem = BENCH.problem(("accuracy", "macs"), constraints, budget)
    t0, c0 = time.perf_counter(), time.process_time()
    instantiate(strategy_config(name)).run(problem, np.random.default_rng(seed))
    history = problem.history
    feasible = [e.measurement["accuracy"] for e in history if problem.feasible(e.measurement)]
    _, optimum = BENCH.best_feasible(constraints)
    return {
        "strategy": name,
        "seed": seed,
        "regret": optimum - max(feasible) if feasible else float("nan"),
        "used": problem.used,
        "seconds": time.perf_counter() - t0,
        "cpu": time.process_time() - c0,
    }


def main(argv: list[str] | None = None) -> None:
    global BENCH
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--write", default="outputs/bench_table_space/table.csv",
                   help="where the generated table is written (CSV)")
    p.add_argument("--table-seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--budget", type=int, default=200)
    p.add_argument("--fraction", type=float, default=0.5, help="FLOPs bound / largest FLOPs")
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    out = Path(args.write)
    out = out if out.is_absolute() else ROOT / out
    out.parent.mkdir(parents=True, exist_ok=True)
    make_table(args.table_seed).to_csv(out, index=False)
    print(f"table: {out} (16,384 rows, {LAYERS} decision columns × {len(WIDTHS)} widths)")
    if args.seeds < 1:
        return
    BENCH = load_column_table(out, DECISIONS, "acc", {"macs": "flops", "latency_ms": "lat"},
                              report_quality="test_acc")
    constraints = BENCH.relative({"macs": args.fraction})
    arch, optimum = BENCH.best_feasible(constraints)
    print(f"FLOPs ≤ {constraints['macs']:.0f} ({args.fraction:.0%} of the largest network); "
          f"feasible rows {int(BENCH.oracle().feasible_mask(constraints).sum())}; best feasible "
          f"acc {optimum:.3f} ({BENCH.space.to_string(arch)}); budget {args.budget}, "
          f"{args.seeds} seeds, {args.workers} worker(s)")
    for name in args.strategies:
        settings = {k: v for k, v in OmegaConf.to_container(strategy_config(name)).items()
                    if k != "_target_"}  # type: ignore[union-attr]
        print(f"  {name}: {settings}")
    tasks = [(n, s, args.budget, args.fraction) for n in args.strategies for s in range(args.seeds)]
    tasks.sort(key=lambda t: t[0] != "linas")  # the slowest first
    t0 = time.perf_counter()
    if args.workers > 1:
        with mp.get_context("fork").Pool(args.workers) as pool:
            results = list(pool.imap_unordered(run_one, tasks))
    else:
        results = [run_one(t) for t in tasks]
    wall = time.perf_counter() - t0
    frame = pd.DataFrame(results)
    print("\n| strategy | mean regret ± std (points) | found optimum | look-ups | CPU s/seed |")
    print("|---|---|---|---|---|")
    for name in args.strategies:
        rows = frame[frame.strategy == name]
        print(f"| {name} | {rows.regret.mean():.3f} ± {rows.regret.std(ddof=1):.3f} | "
              f"{(rows.regret <= 1e-9).mean():.0%} | {rows.used.mean():.0f} | "
              f"{rows.cpu.mean():.1f} |")
    print(f"\n{len(tasks)} runs in {wall:.0f} s wall ({frame.cpu.sum():.0f} s CPU); shared machine")


if __name__ == "__main__":
    main()
