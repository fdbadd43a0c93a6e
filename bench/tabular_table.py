"""`bench/reproduce_tabular.py --space table`: the strategy comparison on any table.

The same strategies and settings as the NATS-Bench size section (regret against look-ups,
mean and IQR over seeds, a no-search baseline), on a CSV or Parquet table with one row per
architecture given by the keys of `space=table`:

    python bench/reproduce_tabular.py --space table --path my.csv \\
        --decisions l1 l2 l3 l4 l5 l6 l7 --quality acc --costs macs=flops latency_ms=lat \\
        --fractions 0.5 --seeds 10

Regret is in the quality's units, oriented so that 0 is the table's best feasible row
(best − found for `--quality-sense max`, found − best for `min`).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from search.benchmarks import BenchmarkError, ColumnBenchmark, load_column_table


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("--space table (the keys of space=table)")
    g.add_argument("--space", choices=("benchmarks", "table"), default="benchmarks",
                   help="benchmarks: NATS-Bench size and NAS-Bench-201 (--sections); table: "
                   "any table given by the options below")
    g.add_argument("--path", help="CSV or Parquet file, one row per architecture")
    g.add_argument("--decisions", nargs="+", help="decision columns in layer order")
    g.add_argument("--quality", help="the column searched on")
    g.add_argument("--report-quality", default=None, help="a column reported beside it")
    g.add_argument("--quality-sense", choices=("max", "min"), default="max")
    g.add_argument("--costs", nargs="+", default=[], metavar="NAME=COLUMN",
                   help="cost name → column, e.g. macs=flops latency_ms=lat")
    g.add_argument("--order", nargs="*", default=[], metavar="COLUMN=A,B,C",
                   help="a column's values small → large")
    g.add_argument("--constraint-metric", default=None,
                   help="the cost bounded by --fractions (default: the first of --costs)")
    g.add_argument("--name", default=None, help="the table's name (default: the file's)")


def _pairs(items: Sequence[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise BenchmarkError(f"{flag} takes NAME=VALUE items, got {item!r}")
        out[key] = value
    return out


def load(args: argparse.Namespace) -> ColumnBenchmark:
    """The table of `--space table`, with one clear error for a missing key."""
    missing = [f"--{k}" for k in ("path", "decisions", "quality") if not getattr(args, k)]
    if missing or not args.costs:
        raise BenchmarkError(f"--space table needs {', '.join(missing + ['--costs'])} "
                             "(see --help)")
    order = {k: v.split(",") for k, v in _pairs(args.order, "--order").items()}
    costs = _pairs(args.costs, "--costs")
    bench = load_column_table(args.path, args.decisions, args.quality, costs,
                              args.report_quality, args.quality_sense, order, args.name)
    if args.constraint_metric and args.constraint_metric not in bench.costs:
        raise BenchmarkError(f"--constraint-metric {args.constraint_metric!r} is not one of "
                             f"--costs {list(bench.costs)}")
    return bench


def names(bench: Any, args: argparse.Namespace) -> tuple[str, float, str]:
    """(quality metric, sign making it maximised, bounded cost) of a benchmark."""
    if isinstance(bench, ColumnBenchmark):
        cost = args.constraint_metric or next(iter(bench.costs))
        return bench.quality_metric, 1.0 if bench.maximise else -1.0, cost
    return "accuracy", 1.0, "macs"


def _stats(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return {"mean": float("nan"), "std": float("nan"), "q25": float("nan"),
                "q75": float("nan"), "n": 0}
    q25, q75 = np.percentile(v, [25, 75])
    std = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return {"mean": float(v.mean()), "std": std, "q25": float(q25), "q75": float(q75),
            "n": int(len(v))}


def _at(run: Mapping[str, Any], looks: int) -> float:
    best = float("nan")
    for i, value, _ in run["steps"]:
        if i <= looks:
            best = value
    return best


def table_summary(results, bench: ColumnBenchmark, baselines, args) -> dict[str, Any]:
    """Per fraction: the table's optimum and each strategy's regret at checkpoints."""
    quality, sign, cost = names(bench, args)
    groups: dict[tuple, list[Mapping[str, Any]]] = defaultdict(list)
    for r in results:
        if r["key"][0] == "table":
            groups[(r["key"][3], r["key"][4])].append(r)
    checkpoints = [c for c in (50, 100, 200, 400) if c <= args.budget] or [args.budget]
    if args.budget not in checkpoints:
        checkpoints.append(args.budget)
    out: dict[str, Any] = {"name": bench.name, "quality": quality, "sign": sign, "cost": cost,
                           "fractions": {}}
    for f in args.fractions:
        bound = bench.relative({cost: f})
        arch, optimum = bench.best_feasible(bound)
        rows: dict[str, Any] = {}
        for (name, frac), runs in groups.items():
            if frac != f:
                continue
            row: dict[str, Any] = {"seeds": len(runs), "cpu": sum(r["cpu"] for r in runs),
                                   "used": float(np.mean([r["used"] for r in runs]))}
            for c in checkpoints:
                regrets = [sign * optimum - _at(r, c) for r in runs]
                row[f"regret@{c}"] = _stats(regrets)
                row[f"found@{c}"] = float(np.mean([x <= 1e-9 for x in regrets]))
            rows[name] = row
        base = baselines[f]
        out["fractions"][str(f)] = {
            "bound": bound[cost], "optimum": optimum, "optimum_arch": bench.space.to_string(arch),
            "checkpoints": checkpoints, "strategies": rows,
            "no_search": {**base, "regret": None if base["value"] is None
                          else sign * optimum - base["value"]},
        }  # fmt: skip
    return out


def table_markdown(summary: Mapping[str, Any]) -> list[str]:
    q, cost = summary["quality"], summary["cost"]
    lines = [f"## Table {summary['name']}: regret on {q} (0 = the table's best feasible row)", ""]
    for f, cell in summary["fractions"].items():
        cps = cell["checkpoints"]
        lines += [
            f"### {cost} ≤ {float(f):.0%} of the largest network ({cell['bound']:.4g}): "
            f"optimum {cell['optimum']:.4g} (`{cell['optimum_arch']}`)",
            "",
            "| strategy | seeds | look-ups | "
            + " | ".join(f"regret@{c} mean ± std [IQR]" for c in cps)
            + f" | found optimum@{cps[-1]} |",
            "|" + "---|" * (4 + len(cps)),
        ]
        for name, row in cell["strategies"].items():
            stats = [row[f"regret@{c}"] for c in cps]
            lines.append(
                f"| {name} | {row['seeds']} | {row['used']:.0f} | "
                + " | ".join(f"{s['mean']:.3f} ± {s['std']:.3f} [{s['q25']:.2f}, {s['q75']:.2f}]"
                             for s in stats)
                + f" | {row[f'found@{cps[-1]}']:.0%} |"
            )
        base = cell["no_search"]
        shown = "none feasible" if base["regret"] is None else f"{base['regret']:.3f}"
        lines += [f"| one-layer-off largest (no search) | – | {base['used']} | "
                  + " | ".join(shown for _ in cps) + " | – |", ""]
    return lines


def plot_table(results, summary: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fractions = list(summary["fractions"])
    fig, axes = plt.subplots(1, len(fractions), figsize=(5 * len(fractions), 4), squeeze=False)
    for ax, f in zip(axes[0], fractions, strict=True):
        cell = summary["fractions"][f]
        by_name: dict[str, list[np.ndarray]] = defaultdict(list)
        for r in results:
            if r["key"][0] == "table" and str(r["key"][4]) == f:
                by_name[r["key"][3]].append(r["curve"])
        for name, curves in sorted(by_name.items()):
            regret = summary["sign"] * cell["optimum"] - np.stack(curves)  # curves: sign × quality
            ok = np.isfinite(regret).all(axis=0)
            x = np.arange(1, regret.shape[1] + 1)[ok]
            ax.plot(x, regret.mean(axis=0)[ok], label=f"{name} ({len(curves)})")
        ax.set_yscale("symlog", linthresh=0.05)
        ax.set_title(f"{summary['name']}, {summary['cost']} ≤ {float(f):.0%}")
        ax.set_xlabel("look-ups")
        ax.set_ylabel(f"regret ({summary['quality']})")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
