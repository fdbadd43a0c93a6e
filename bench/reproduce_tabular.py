"""Reproduce the tabular-benchmark comparisons: LayerNAS on NATS-Bench size, MathNAS on NB201.

    python bench/reproduce_tabular.py                       # everything, 100 seeds, 2 workers
    python bench/reproduce_tabular.py --seeds 20 --sections sss
    NAS_DATA=/data/nas python bench/reproduce_tabular.py --out outputs/tabular

Regret = best feasible validation accuracy in the table − best feasible validation accuracy
among the strategy's look-ups, as a function of the number of look-ups (mean and inter-quartile
range over seeds). Writes `report.md`, `summary.json` and the figures into `--out`.

NATS size (the LayerNAS setting, arXiv 2304.11517): FLOPs ≤ 50% of the largest network, budget
400, strategies random, regularized evolution, NSGA-II, LINAS, MathNAS, LayerNAS, plus a no-
search baseline (the best feasible network that differs from the largest in one layer only).
LayerNAS keeps the 4 best per bucket with a jittered bucket grid (`--layernas-top`,
`--layernas-fixed-grid`). NAS-Bench-201 (the MathNAS setting, arXiv 2311.04943): FLOPs ≤
25/50/75%, MathNAS single-context (the paper), averaged over sampled contexts (Eq. 3), with the
top-k picks validated, with the top-k validated in rounds and the table refitted on the
validated networks between rounds, and averaged contexts plus top-k, each against random search
with as many look-ups; predicted-vs-table rank correlation over all 15,625 cells (of the
refitted table for the refit variant); test accuracy of the picks. Every strategy runs
`--seeds` seeds (default 100). The cells are kept distinct there (`canonical=False`): MathNAS's
additive cost model needs the table's per-edge FLOPs, which merged isomorphs (cheapest member)
do not have.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one BLAS thread per worker

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.tabular_report import nb201_summary, sss_summary, write_report  # noqa: E402
from search.benchmarks import TabularBenchmark, load_benchmark  # noqa: E402
from search.mathnas.table import BlockTable  # noqa: E402
from search.problem import Problem  # noqa: E402
from search.strategies.evolution import RegularizedEvolution  # noqa: E402
from search.strategies.layernas import LayerNAS  # noqa: E402
from search.strategies.linas import LINAS  # noqa: E402
from search.strategies.mathnas import MathNAS  # noqa: E402
from search.strategies.nsga2 import NSGA2Search  # noqa: E402
from search.strategies.random import RandomSearch  # noqa: E402

DATASETS = ("cifar10", "cifar100", "imagenet16_120")
BENCHES: dict[tuple[str, str, str], TabularBenchmark] = {}  # loaded before the workers fork
ARGS: argparse.Namespace | None = None


def sss_strategies(args: argparse.Namespace) -> dict[str, tuple[Callable[[], Any], int]]:
    """name → (factory, seeds). MathNAS runs without the FLOPs correction on NATS size: its
    cost deltas, measured on the largest net, predict negative FLOPs for small networks
    (NATS FLOPs are products of neighbouring widths), which the corrected program rejects."""
    s, k, r = args.seeds, args.top_k, args.refit_rounds
    return {
        "random": (RandomSearch, s),
        "evolution": (RegularizedEvolution, s),
        "nsga2": (NSGA2Search, s),
        "linas": (
            lambda: LINAS(
                generations=args.linas_generations,
                predict_costs=False,
                folds=3,
                ridge_alphas=(0.1, 1.0, 10.0),
                svr_cs=(),  # ridge only: 3-fold CV chose ridge in every fit we checked
            ),
            min(s, args.linas_seeds or s),
        ),
        "mathnas": (lambda: MathNAS(flops_correction=False, quality_sample=0), s),
        f"mathnas_top{k}": (
            lambda: MathNAS(flops_correction=False, top_k=k, quality_sample=0),
            min(s, args.mathnas_seeds or s),
        ),
        f"mathnas_top{k}_refit{r}": (
            lambda: MathNAS(flops_correction=False, top_k=k, refit_rounds=r, quality_sample=0),
            min(s, args.mathnas_seeds or s),
        ),
        "layernas": (
            lambda: LayerNAS(
                buckets=args.layernas_buckets,
                top_per_bucket=args.layernas_top,
                bucket_jitter=not args.layernas_fixed_grid,
            ),
            s,
        ),
    }


def nb201_variants(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """name → MathNAS options: the paper first, then the variants."""
    avg = {"context": "averaged", "num_contexts": args.contexts}
    k, r, c = args.top_k, args.refit_rounds, args.contexts
    return {
        "mathnas": {},
        f"mathnas_avg{c}": avg,
        f"mathnas_top{k}": {"top_k": k},
        f"mathnas_top{k}_refit{r}": {"top_k": k, "refit_rounds": r},
        f"mathnas_avg{c}_top{k}": {**avg, "top_k": k},
    }


def first_picks(args: argparse.Namespace, section: str) -> dict[str, str]:
    """Top-1 variant → the top-k run it is read from (its table plus its first pick).

    A top-k run measures the same table (same seed) and validates its picks best first, so
    its history up to the first pick is the top-1 run's history; reading it there saves the
    separate runs (`--run-first-picks` runs them instead)."""
    if args.run_first_picks:
        return {}
    k, c = args.top_k, args.contexts
    out = {"mathnas": f"mathnas_top{k}"}
    if section == "nb201":
        out[f"mathnas_avg{c}"] = f"mathnas_avg{c}_top{k}"
    return out


# --- one run ------------------------------------------------------------------------------
def best_curve(problem: Problem, length: int, limit: int | None = None) -> np.ndarray:
    """Best feasible accuracy after each look-up (NaN before the first feasible one)."""
    history = problem.history[:limit]
    out = np.full(length, np.nan, dtype=np.float64)
    best = np.nan
    for i, ev in enumerate(history[:length]):
        if problem.feasible(ev.measurement):
            acc = ev.measurement["accuracy"]
            best = acc if np.isnan(best) else max(best, acc)
        out[i] = best
    if history:
        out[len(history) :] = best
    return out


def _record(
    bench: TabularBenchmark, problem: Problem, length: int, limit: int | None = None
) -> dict[str, Any]:
    """Curve, look-ups used, and each improvement (look-up, value, arch) for test accuracy,
    over the first `limit` look-ups (all by default)."""
    history = problem.history[:limit]
    improvements: list[tuple[int, float, str]] = []
    for ev in history:
        if problem.feasible(ev.measurement):
            acc = ev.measurement["accuracy"]
            if not improvements or acc > improvements[-1][1]:
                improvements.append((ev.index + 1, acc, bench.space.to_string(ev.arch)))
    curve = best_curve(problem, length, limit)
    return {"curve": curve, "used": len(history), "steps": improvements}


def _first_pick_limit(problem: Problem, extras: dict[str, Any]) -> int:
    """Look-ups of the top-1 run inside a top-k run: the table, then its first pick if new."""
    table = int(extras["table_validations"])
    first = [f for f in extras["predicted_front"] if f.get("rank") == 0]
    if not first:
        return table
    at = next(ev.index for ev in problem.history if ev.arch.arch_id == first[0]["arch_id"])
    return max(table, at + 1)


def _picks(bench: TabularBenchmark, front: list[dict[str, Any]], bound: float) -> dict[str, Any]:
    """Best validated feasible pick (the paper's answer) and how many picks broke the bound."""
    picks = [f for f in front if "rank" in f]
    feasible = [
        f["measured_accuracy"]
        for f in picks
        if f["measured_accuracy"] is not None
        and bench.cost(bench.space.arch(f["arch"]))["macs"] <= bound
    ]
    return {
        "pick": max(feasible) if feasible else None,
        "picks_infeasible": len(picks) - len(feasible),
    }


def run_task(task: tuple[Any, ...]) -> list[dict[str, Any]]:
    """One seed of one strategy on one benchmark setting (runs in a worker); also the records
    of the top-1 variants read from this run (`first_picks`)."""
    section, dataset, setting, strategy, seed, fraction = task
    assert ARGS is not None
    bench = BENCHES[(section, dataset, setting)]
    constraints = bench.relative({"macs": fraction})
    rng = np.random.default_rng(seed)
    t0, c0 = time.perf_counter(), time.process_time()
    derived = [d for d, src in first_picks(ARGS, section).items() if src == strategy]
    extra_records: list[dict[str, Any]] = []
    if section == "sss":
        factory = sss_strategies(ARGS)[strategy][0]
        problem = bench.problem(("accuracy", "macs"), constraints, ARGS.budget)
        extras = factory().run(problem, rng)
        out = _record(bench, problem, ARGS.budget)
        for name in derived:
            limit = _first_pick_limit(problem, extras)
            extra_records.append({**_record(bench, problem, ARGS.budget, limit), "name": name})
    elif strategy == "random":
        problem = bench.problem(("accuracy", "macs"), constraints, ARGS.nb201_budget)
        RandomSearch().run(problem, rng)
        out = _record(bench, problem, ARGS.nb201_budget)
    else:
        kwargs = nb201_variants(ARGS)[strategy]
        problem = bench.problem(("accuracy", "macs"), constraints, ARGS.nb201_budget)
        extras = MathNAS(quality_sample=0, **kwargs).run(problem, rng)
        out = _record(bench, problem, ARGS.nb201_budget)
        front = extras["predicted_front"]
        out.update(_picks(bench, front, constraints["macs"]))
        out["table_validations"] = extras["table_validations"]
        quality = None
        if seed < ARGS.quality_seeds:
            if extras["refit_table"] is not None:  # refitted on constraint-dependent picks
                quality = predictor_quality(bench, extras["refit_table"])
            elif fraction == ARGS.fractions[0]:  # the measured table does not depend on it
                quality = predictor_quality(bench, extras["block_table"])
        if quality is not None:
            out["quality"] = quality
        for name in derived:
            limit = _first_pick_limit(problem, extras)
            first = [f for f in front if f.get("rank") == 0]
            rec = {**_record(bench, problem, ARGS.nb201_budget, limit), "name": name}
            rec.update(_picks(bench, first, constraints["macs"]))
            rec["table_validations"] = extras["table_validations"]
            if quality is not None:
                rec["quality"] = quality
            extra_records.append(rec)
    out.update(key=(section, dataset, setting, strategy, fraction), seed=seed)
    out["seconds"] = time.perf_counter() - t0
    out["cpu"] = time.process_time() - c0
    for rec in extra_records:  # read from this run: no time of their own
        rec.update(key=(section, dataset, setting, rec.pop("name"), fraction), seed=seed)
        rec["seconds"] = rec["cpu"] = 0.0
    return [out, *extra_records]


_ONE_HOT: dict[int, np.ndarray] = {}


def predictor_quality(bench: TabularBenchmark, table_dict: dict[str, Any]) -> dict[str, float]:
    """Spearman and Kendall τ of MathNAS's predictions against the table, over every cell."""
    from scipy import stats

    table = BlockTable.from_dict(table_dict)
    if id(bench) not in _ONE_HOT:  # one row per cell, one column per (node, option)
        choices = np.array([bench.space.node_choices(a) for a in bench.archs()])
        offsets = np.concatenate([[0], np.cumsum(table.num_options)[:-1]])
        hot = np.zeros((len(choices), sum(table.num_options)))
        np.put_along_axis(hot, choices + offsets, 1.0, axis=1)
        _ONE_HOT[id(bench)] = hot
    hot = _ONE_HOT[id(bench)]
    flops = table.base_flops + hot @ table.vector("flops")
    drop = hot @ table.vector("acc_drop")
    predicted = table.base_accuracy - drop * table.mean_flops / flops
    out = {}
    for name, truth in (("val", bench.val_acc), ("test", bench.test_acc)):
        if np.isfinite(truth).all():
            out[f"spearman_{name}"] = float(stats.spearmanr(predicted, truth).statistic)
            out[f"kendall_{name}"] = float(stats.kendalltau(predicted, truth).statistic)
    return out


def no_search_baseline(bench: TabularBenchmark, fraction: float) -> dict[str, Any]:
    """Best feasible network among those differing from the largest in one layer only."""
    space = bench.space
    largest = space.largest()
    neighbours = {
        a.arch_id: a
        for d in space.decisions
        for o in d.options
        if o != largest[d.label]
        for a in [space.arch(largest.replace(**{d.label: o}))]
    }
    problem = bench.problem(("accuracy", "macs"), bench.relative({"macs": fraction}), 10_000)
    problem.evaluate([a for a in neighbours.values() if problem.cost_feasible(a)])
    steps = _record(bench, problem, max(problem.used, 1))["steps"]
    if not steps:  # no one-layer-off network meets the constraint
        return {"used": problem.used, "value": None, "arch": None}
    return {"used": problem.used, "value": steps[-1][1], "arch": steps[-1][2]}


# --- the whole reproduction ---------------------------------------------------------------
def build_tasks(args: argparse.Namespace) -> list[tuple[Any, ...]]:
    tasks = []
    if "sss" in args.sections:
        for ds in args.datasets:
            derived = first_picks(args, "sss")
            for name, (_, seeds) in sss_strategies(args).items():
                if name not in derived:
                    tasks += [("sss", ds, "90ep", name, s, 0.5) for s in range(seeds)]
    if "nb201" in args.sections:
        for ds in args.datasets:
            for setting in args.nb201_validation:
                for f in args.fractions:
                    tasks += [("nb201", ds, setting, "random", s, f) for s in range(args.seeds)]
                    for name in nb201_variants(args):
                        if name in first_picks(args, "nb201"):
                            continue
                        seeds = range(min(args.seeds, args.mathnas_seeds or args.seeds))
                        tasks += [("nb201", ds, setting, name, s, f) for s in seeds]
    slow = ("linas", "mathnas_top", "mathnas_avg")
    return sorted(tasks, key=lambda t: not str(t[3]).startswith(slow))  # long ones first


def load_all(args: argparse.Namespace) -> None:
    for ds in args.datasets:
        if "sss" in args.sections:
            BENCHES[("sss", ds, "90ep")] = load_benchmark("nats_sss", args.data_dir, ds)
        if "nb201" in args.sections:
            for setting in args.nb201_validation:
                BENCHES[("nb201", ds, setting)] = load_benchmark(
                    "nas_bench_201", args.data_dir, ds, validation=setting, canonical=False
                )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--data-dir",
        default=os.environ.get("NAS_DATA"),
        help="published exports or compact tables (default: $NAS_DATA, else the tables "
        "bundled with the package)",
    )
    p.add_argument("--out", default="outputs/reproduce_tabular")
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--linas-seeds", type=int, default=None, help="default: --seeds")
    p.add_argument("--mathnas-seeds", type=int, default=None, help="default: --seeds")
    p.add_argument("--linas-generations", type=int, default=20)
    p.add_argument("--layernas-buckets", type=int, default=None)
    p.add_argument("--layernas-top", type=int, default=4, help="LayerNAS: kept per bucket")
    p.add_argument(
        "--layernas-fixed-grid", action="store_true", help="LayerNAS: no bucket jitter"
    )
    p.add_argument("--refit-rounds", type=int, default=4, help="MathNAS refit variant")
    p.add_argument(
        "--run-first-picks",
        action="store_true",
        help="run the top-1 MathNAS variants separately instead of reading them from the "
        "top-k runs",
    )
    p.add_argument(
        "--quality-seeds", type=int, default=20, help="seeds whose predictor is scored"
    )
    p.add_argument("--budget", type=int, default=400, help="look-ups on NATS size")
    p.add_argument("--nb201-budget", type=int, default=300, help="look-ups on NB201")
    p.add_argument("--contexts", type=int, default=10, help="MathNAS averaged contexts")
    p.add_argument("--top-k", type=int, default=20)
    p.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    p.add_argument("--nb201-validation", nargs="+", default=["12ep", "200ep_test"])
    p.add_argument("--datasets", nargs="+", default=list(DATASETS))
    p.add_argument("--sections", nargs="+", default=["sss", "nb201"])
    p.add_argument("--workers", type=int, default=2)
    return p.parse_args(argv)


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the pool's workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main(argv: list[str] | None = None) -> None:
    global ARGS
    args = ARGS = parse_args(argv)
    t0, cpu0 = time.perf_counter(), _cpu()
    load_all(args)
    loaded = time.perf_counter()
    tasks = build_tasks(args)
    print(
        f"{len(tasks)} runs on {args.workers} worker(s); loading took {loaded - t0:.1f} s",
        flush=True,
    )
    results: list[dict[str, Any]] = []
    if args.workers > 1:
        with mp.get_context("fork").Pool(args.workers) as pool:
            for i, r in enumerate(pool.imap_unordered(run_task, tasks, chunksize=2), 1):
                results += r
                if i % 200 == 0:
                    print(f"  {i}/{len(tasks)} runs, {time.perf_counter() - t0:.0f} s", flush=True)
    else:
        results = [rec for t in tasks for rec in run_task(t)]
    wall = time.perf_counter() - t0
    summary: dict[str, Any] = {
        "args": dict(vars(args)),
        "command": " ".join(["python bench/reproduce_tabular.py", *sys.argv[1:]]),
        "wall_seconds": wall,
        "load_seconds": loaded - t0,
        "cpu_seconds": {
            section: sum(r["cpu"] for r in results if r["key"][0] == section)
            for section in args.sections
        },
        "run_seconds": {
            section: sum(r["seconds"] for r in results if r["key"][0] == section)
            for section in args.sections
        },
    }
    if "sss" in args.sections:
        baselines = {
            ds: no_search_baseline(BENCHES[("sss", ds, "90ep")], 0.5) for ds in args.datasets
        }
        summary["sss"] = sss_summary(results, BENCHES, baselines, args)
    if "nb201" in args.sections:
        summary["nb201"] = nb201_summary(results, BENCHES, args)
    summary["total_wall_seconds"] = time.perf_counter() - t0
    summary["total_cpu_seconds"] = _cpu() - cpu0
    out = Path(args.out)
    out = out if out.is_absolute() else ROOT / out
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "summary.json", "w") as f:  # first, so a failing figure loses nothing
        json.dump(summary, f, indent=1, default=float)
    report = write_report(summary, results, out, args)
    print(report)
    print(
        f"wrote {out}/report.md, summary.json and figures: {time.perf_counter() - t0:.0f} s "
        f"wall, {_cpu() - cpu0:.0f} s CPU (this process and its workers)"
    )


if __name__ == "__main__":
    main()
