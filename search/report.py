"""What a search leaves behind: tables, a summary, a Pareto plot and a hypervolume curve.

`write_report(result, run_dir)` writes, into the run directory:

- `results.csv` / `results.jsonl`: every validated subnet with its metrics (named columns);
- `summary.json`: strategy, seed, objectives, constraints, the hypervolume curve and the
  best-under-constraint curve by number of validations, the best picks and the front
  (what `search.compare` reads to compare strategies across seeds);
- `pareto.png`: every validated point, the exact front as a step line, the constraints as
  lines and the best picks annotated; `hypervolume.png`: both curves.

Figures are drawn with matplotlib's object API on an Agg canvas (no pyplot state, no display).
W&B logging lives in `search.tracking`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter
from rich.console import Console
from rich.table import Table

from search.problem import metric_sense
from search.results import Row, SearchResult, non_dominated

RESULTS_CSV = "results.csv"
HELD_OUT_CSV = "held_out.csv"
RESULTS_JSONL = "results.jsonl"
SUMMARY_JSON = "summary.json"
PARETO_PNG = "pareto.png"
HYPERVOLUME_PNG = "hypervolume.png"

LABELS = {
    "accuracy": "accuracy (%)",
    "bleu": "BLEU",
    "loss": "validation loss",
    "latency_ms": "latency (ms)",
    "cpu_time_ms": "CPU time (ms)",
    "macs": "MACs",
    "params": "parameters",
    "energy_mj": "energy (mJ)",
}


def label(metric: str) -> str:
    return LABELS.get(metric, metric)


def fmt_value(metric: str, value: float | None) -> str:
    """A metric value for tables and labels (engineering notation for MACs and params)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if metric in {"macs", "params"}:
        return EngFormatter(sep="")(float(value))
    return f"{value:.4g}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


# --- summary ---------------------------------------------------------------------------
def best_curves(result: SearchResult) -> dict[str, list[float]]:
    """Per key of `result.best`: the best first objective among rows qualifying so far.

    A row qualifies for a constraint name when it meets that bound alone, and for `"all"`
    when it is feasible; NaN until a row qualifies.
    """
    first = result.objectives[0]
    sign = 1.0 if metric_sense(first)[0] else -1.0
    curves: dict[str, list[float]] = {}
    for key in result.best:
        best, curve = -math.inf, []
        for row in result.rows:
            ok = row.feasible if key == "all" else row.metrics[key] <= result.constraints[key]
            if ok:
                best = max(best, sign * row.metrics[first])
            curve.append(sign * best if math.isfinite(best) else math.nan)
        curves[key] = curve
    return curves


def _row_dict(row: Row) -> dict[str, Any]:
    return {
        "index": row.index,
        "arch_id": row.arch_id,
        "arch": row.arch.to_dict(),
        "metrics": dict(row.metrics),
        "feasible": row.feasible,
    }


def summary(result: SearchResult, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON-ready summary of a run (see the module docstring)."""
    return _jsonable(
        {
            "strategy": result.strategy,
            "seed": result.seed,
            "objectives": list(result.objectives),
            "constraints": dict(result.constraints),
            "reference_point": list(result.reference_point),
            "ideal_point": list(result.ideal_point),
            "validations": len(result.rows),
            "held_out_validations": len(result.held_out),
            "hypervolume": list(result.hypervolume),
            "hypervolume_normalised": list(result.hypervolume_normalised),
            "best_curve": best_curves(result),
            "best": {k: None if r is None else _row_dict(r) for k, r in result.best.items()},
            "pareto": [_row_dict(r) for r in result.pareto],
            "extras": dict(result.extras),
            **dict(extra or {}),
        }
    )


# --- console ------------------------------------------------------------------------------
def summary_tables(result: SearchResult, max_front: int = 15) -> list[Table]:
    """Rich tables: the run in one line, the best pick per constraint, the front."""
    hv = result.hypervolume[-1] if result.hypervolume else math.nan
    hvn = result.hypervolume_normalised[-1] if result.hypervolume_normalised else math.nan
    head = Table(title=f"Search: {result.strategy} (seed {result.seed})")
    for col in ("validations", "objectives", "constraints", "front size", "hypervolume"):
        head.add_column(col)
    bounds = ", ".join(f"{k} ≤ {fmt_value(k, v)}" for k, v in result.constraints.items()) or "none"
    head.add_row(
        str(len(result.rows)),
        ", ".join(result.objectives),
        bounds,
        str(len(result.pareto)),
        f"{hv:.4g} ({hvn:.3f} normalised)",
    )
    shown = list(dict.fromkeys([*result.objectives, *result.constraints]))
    best = Table(title="Best subnet under each constraint")
    best.add_column("constraint")
    for m in shown:
        best.add_column(label(m), justify="right")
    best.add_column("arch_id")
    best.add_column("validation", justify="right")
    for key, row in result.best.items():
        name = "all" if key == "all" else f"{key} ≤ {fmt_value(key, result.constraints[key])}"
        if row is None:
            best.add_row(name, *["-"] * len(shown), "none feasible", "-")
        else:
            cells = [fmt_value(m, row.metrics.get(m)) for m in shown]
            best.add_row(name, *cells, row.arch_id, str(row.index + 1))
    front = Table(title=f"Pareto front ({len(result.pareto)} subnets)")
    for m in shown:
        front.add_column(label(m), justify="right")
    front.add_column("arch_id")
    order = sorted(result.pareto, key=lambda r: [r.metrics[o] for o in result.objectives[1:]])
    for row in order[:max_front]:
        front.add_row(*[fmt_value(m, row.metrics.get(m)) for m in shown], row.arch_id)
    if len(order) > max_front:
        front.caption = f"{len(order) - max_front} more in {RESULTS_CSV} (column pareto)"
    tables = [head, best, front]
    if result.held_out:
        tables.append(_held_out_table(result))
    return tables


def _held_out_table(result: SearchResult) -> Table:
    """The held-out validations in one line, with the predictor figures they gave."""
    table = Table(title=f"Held out of the front: {len(result.held_out)} validations "
                        f"({HELD_OUT_CSV})")
    quality = result.extras.get("predictor_quality") or {}
    shown = [k for k in ("samples", "spearman", "kendall", "mae") if k in quality]
    for key in ("validations", *shown):
        table.add_column(key, justify="right")
    cells = [quality[k] for k in shown]
    table.add_row(str(len(result.held_out)),
                  *("-" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)
                    for v in cells))
    table.caption = "subnets that only score the strategy's predictor: in no front or best row"
    return table


def print_summary(result: SearchResult, console: Console | None = None) -> None:
    console = console or Console()
    for table in summary_tables(result):
        console.print(table)


# --- plots ------------------------------------------------------------------------------------
def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def _axis_format(ax: Any, x: str, y: str) -> None:
    ax.set_xlabel(label(x))
    ax.set_ylabel(label(y))
    if x in {"macs", "params"}:
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    if y in {"macs", "params"}:
        ax.yaxis.set_major_formatter(EngFormatter(sep=""))
    ax.grid(True, alpha=0.3)


def pareto_figure(result: SearchResult) -> Figure:
    """Quality (first objective) against cost (second objective, else the first constraint)."""
    y = result.objectives[0]
    x = result.objectives[1] if len(result.objectives) > 1 else next(iter(result.constraints), "")
    fig = Figure(figsize=(7, 5))
    ax = fig.add_subplot()
    if not result.rows or not x:
        ax.text(0.5, 0.5, "nothing to plot", ha="center", va="center", transform=ax.transAxes)
        return fig
    xs = np.array([r.metrics.get(x, np.nan) for r in result.rows], dtype=float)
    ys = np.array([r.metrics.get(y, np.nan) for r in result.rows], dtype=float)
    feasible = np.array([r.feasible for r in result.rows], dtype=bool)
    order = np.arange(1, len(result.rows) + 1)
    ax.scatter(xs[~feasible], ys[~feasible], s=14, c="lightgrey", label="infeasible")
    points = ax.scatter(
        xs[feasible], ys[feasible], s=16, c=order[feasible], cmap="viridis", label="validated"
    )
    if feasible.any():
        fig.colorbar(points, ax=ax, label="validation")
    # the exact 2-D front of the feasible points, drawn as its attainment step line
    idx = np.flatnonzero(feasible)
    signs = np.array([-1.0 if metric_sense(m)[0] else 1.0 for m in (x, y)])
    front = idx[non_dominated(np.column_stack([xs[idx], ys[idx]]) * signs)]
    front = front[np.argsort(xs[front], kind="stable")]
    ax.plot(xs[front], ys[front], drawstyle="steps-post", color="crimson", lw=1.5)
    ax.scatter(xs[front], ys[front], s=36, facecolors="none", edgecolors="crimson", label="front")
    for name, bound in result.constraints.items():
        text = f"{name} ≤ {fmt_value(name, bound)}"
        if name == x:
            ax.axvline(bound, color="black", ls="--", lw=1, label=text)
        elif name == y:
            ax.axhline(bound, color="black", ls="--", lw=1, label=text)
    picks: dict[int, list[str]] = {}
    for key, row in result.best.items():
        if row is not None:
            picks.setdefault(row.index, []).append(key)
    middle = (float(np.min(xs)) + float(np.max(xs))) / 2
    for k, keys in picks.items():
        ax.scatter(xs[k], ys[k], marker="*", s=160, color="gold", edgecolors="black", zorder=5)
        right_half = xs[k] > middle  # label towards the inside, so it stays in the frame
        ax.annotate(
            f"best ({', '.join(keys)}): {fmt_value(y, ys[k])}",
            (xs[k], ys[k]),
            textcoords="offset points",
            xytext=(-8, -14) if right_half else (8, -14),
            ha="right" if right_half else "left",
            fontsize=8,
        )
    _axis_format(ax, x, y)
    ax.set_title(f"{result.strategy}, seed {result.seed}: {len(result.rows)} validations")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def hypervolume_figure(result: SearchResult) -> Figure:
    """Hypervolume and best-under-constraints against the number of validations."""
    fig = Figure(figsize=(10, 4))
    ax_hv, ax_best = fig.subplots(1, 2)
    steps = np.arange(1, len(result.rows) + 1)
    normalised = np.asarray(result.hypervolume_normalised, dtype=float)
    use_norm = normalised.size > 0 and np.isfinite(normalised).all()
    hv = normalised if use_norm else np.asarray(result.hypervolume, dtype=float)
    ax_hv.plot(steps, hv, drawstyle="steps-post")
    ax_hv.set_xlabel("validations")
    ax_hv.set_ylabel("normalised hypervolume" if use_norm else "hypervolume")
    ax_hv.grid(True, alpha=0.3)
    for key, curve in best_curves(result).items():
        bound = (
            "all constraints"
            if key == "all"
            else f"{key} ≤ {fmt_value(key, result.constraints[key])}"
        )
        ax_best.plot(steps, curve, drawstyle="steps-post", label=bound)
    ax_best.set_xlabel("validations")
    ax_best.set_ylabel(f"best {label(result.objectives[0])} under constraint")
    ax_best.grid(True, alpha=0.3)
    if result.best:
        ax_best.legend(fontsize=8)
    fig.suptitle(f"{result.strategy}, seed {result.seed}")
    return fig


# --- files ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportFiles:
    """Where `write_report` put each output."""

    results_csv: Path
    results_jsonl: Path
    summary_json: Path
    pareto_png: Path
    hypervolume_png: Path


def write_report(
    result: SearchResult,
    out_dir: str | Path,
    extra_summary: Mapping[str, Any] | None = None,
    console: Console | None = None,
) -> ReportFiles:
    """Write tables, summary and plots into `out_dir`; print the summary when given a console.

    `extra_summary` adds run facts to `summary.json` (wall-clock, checkpoint, space...).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = result.to_frame()
    files = ReportFiles(
        out / RESULTS_CSV, out / RESULTS_JSONL, out / SUMMARY_JSON, out / PARETO_PNG,
        out / HYPERVOLUME_PNG,
    )  # fmt: skip
    frame.to_csv(files.results_csv, index=False)
    if result.held_out:
        result.held_out_frame().to_csv(out / HELD_OUT_CSV, index=False)
    with files.results_jsonl.open("w") as f:
        for record in frame.to_dict(orient="records"):
            record["arch"] = json.loads(record["arch"])
            f.write(json.dumps(_jsonable(record)) + "\n")
    files.summary_json.write_text(json.dumps(summary(result, extra_summary), indent=1))
    _save(pareto_figure(result), files.pareto_png)
    _save(hypervolume_figure(result), files.hypervolume_png)
    if console is not None:
        print_summary(result, console)
    return files
