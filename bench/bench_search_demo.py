"""Strategies side by side on the default vision checkpoint: does search find anything?

Runs `strategy=random,linas,layernas,mathnas` with three seeds at the default budget
(`budget` of conf/search.yaml) on one trained checkpoint, through the compose API and
`search.pipeline.run`, exactly as `python search.py` would. Every run shares one measurement
store (same checkpoint), so an architecture validated by one run is read, not measured
again, by the others (it still counts against each run's budget). Objectives: accuracy on the
whole validation split and MACs (`hardware=flops`: exact and free, so the comparison is not
blurred by latency noise on a shared machine).

MathNAS first validates a block table (one network per block option, about 180 on the
MobileNetV3 space), then solves for the problem's constraints: with none it would return one
network, not a front. Its runs therefore sweep 10 MACs bounds evenly spaced between the
smallest and the largest subnet (`strategy.budgets`, one validated pick each) with a budget
of the table's size plus those picks (at least the default budget); the row prints both.

Prints, per strategy, the final normalised hypervolume (mean ± std over seeds) with the
settings beside it, whether it beats random search by more than two standard deviations,
and draws the fronts of every run into one plot (copied to docs/assets/demo_fronts.png).
Runs whose summary.json exists are read, not repeated (delete a run directory to redo it).

    python bench/bench_search_demo.py --ckpt outputs/train/runs/<time>/checkpoints/last.ckpt
        [--out /tmp/search_demo] [--seeds 0 1 2] [--strategies random linas layernas mathnas]
        [-- extra search.py overrides, e.g. evaluation.max_val_images=2000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import open_dict  # noqa: E402

from search.pipeline import run  # noqa: E402
from supernet.errors import NASError  # noqa: E402

MATHNAS_SWEEP = 10  # MACs bounds MathNAS solves for (one validated pick each): its front


def compose_search(overrides: list[str], out: Path) -> Any:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="search", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return cfg


def mathnas_plan(common: list[str], out: Path) -> tuple[int, list[float]]:
    """Validations MathNAS's block table needs on this checkpoint's space, and MACs bounds
    evenly spaced between the smallest and the largest subnet's (its front sweep)."""
    from hydra.utils import instantiate

    from search.mathnas.measure import plan_block_table
    from search.pipeline import _supernet_setup, build_problem

    cfg = compose_search([*common, "strategy=mathnas"], out)
    setup = _supernet_setup(cfg, instantiate(cfg.hardware))
    try:
        problem = build_problem(cfg, setup)
        _, archs = plan_block_table(problem)
        low, high = (problem.cost(a)["macs"] for a in (problem.space.smallest(),
                                                       problem.space.largest()))
    finally:
        if setup.close is not None:
            setup.close()
    bounds = [float(round(b)) for b in np.linspace(low, high, MATHNAS_SWEEP + 1)[1:]]
    return len(archs), bounds


def run_once(name: str, overrides: list[str], out: Path) -> dict[str, Any]:
    """One search into out/name (skipped when its summary exists); its summary."""
    run_dir = out / name
    summary = run_dir / "summary.json"
    if not summary.exists():
        print("$ python search.py", " ".join(overrides), flush=True)
        start = time.perf_counter()
        run(compose_search(overrides, run_dir))
        print(f"  {name}: {time.perf_counter() - start:.0f} s", flush=True)
    data: dict[str, Any] = json.loads(summary.read_text())
    return data


def fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def plot(runs: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Every run's front: accuracy against MACs, one colour per strategy."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for (strategy, summaries), colour in zip(runs.items(), ("C0", "C1", "C2", "C3", "C4"),
                                             strict=False):
        for k, s in enumerate(summaries):
            pts = sorted((r["metrics"]["macs"] / 1e6, r["metrics"]["accuracy"])
                         for r in s["pareto"])
            if not pts:
                continue
            xs, ys = zip(*pts, strict=True)
            ax.step(xs, ys, where="post", color=colour, alpha=0.8, marker=".",
                    label=strategy if k == 0 else None)
    ax.set_xlabel("MMACs")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("Pareto fronts per strategy and seed (default glyph checkpoint)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--out", type=Path, default=Path("/tmp/search_demo"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--strategies", nargs="+",
                        default=["random", "linas", "layernas", "mathnas"])
    parser.add_argument("--threads", type=int, default=2, help="as search.py by default")
    parser.add_argument("overrides", nargs="*",
                        help="extra search.py overrides for every run (printed with the settings)")
    parser.add_argument("--docs-copy", type=Path,
                        default=ROOT / "docs" / "assets" / "demo_fronts.png")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    common = [f"ckpt_path={Path(args.ckpt).resolve()}", "hardware=flops",
              f"store_path={args.out / 'store.sqlite'}", "wandb.enabled=false",
              f"threads={args.threads}", *args.overrides]
    default_budget = int(compose_search([], args.out).budget)
    budgets = dict.fromkeys(args.strategies, default_budget)
    extra: dict[str, list[str]] = {}
    if "mathnas" in budgets:  # one constraint setting by default: a sweep gives it a front
        needed, bounds = mathnas_plan(common, args.out / "_plan")
        budgets["mathnas"] = max(default_budget, needed + MATHNAS_SWEEP)
        extra["mathnas"] = [f"strategy.budgets=[{','.join(f'{b:.0f}' for b in bounds)}]"]
    runs: dict[str, list[dict[str, Any]]] = {}
    started = time.perf_counter()
    for seed in args.seeds:
        for strategy in args.strategies:
            overrides = [*common, f"strategy={strategy}", f"seed={seed}",
                         f"budget={budgets[strategy]}", *extra.get(strategy, [])]
            try:
                runs.setdefault(strategy, []).append(
                    run_once(f"{strategy}_s{seed}", overrides, args.out))
            except NASError as err:
                print(f"  {strategy} seed {seed}: {err}", flush=True)
    print(f"\ncheckpoint: {args.ckpt}")
    print(f"common settings: {' '.join(common[1:])}; objectives accuracy (on the validation "
          f"split, or its first evaluation.max_val_images) and MACs; default budget "
          f"{default_budget}")
    print(f"wall-clock: {(time.perf_counter() - started) / 60:.1f} min "
          "(runs read from earlier summaries included at no cost)")
    runs = {s: rs for s, rs in runs.items() if rs}  # a strategy whose every run failed
    hv = {s: [r["hypervolume_normalised"][-1] for r in rs] for s, rs in runs.items()}
    base = hv.get("random")
    print(f"\n{'strategy':<10} {'normalised hypervolume':<24} {'best accuracy':<16} settings")
    for strategy, values in hv.items():
        best = [max(p["metrics"]["accuracy"] for p in r["pareto"]) for r in runs[strategy]]
        measured = sum(r.get("measured", 0) for r in runs[strategy])
        reused = sum(r.get("reused_from_store", 0) for r in runs[strategy])
        settings = " ".join([f"budget={budgets[strategy]}", *extra.get(strategy, []),
                             f"seeds={','.join(map(str, args.seeds))}",
                             f"measured={measured} reused={reused}"])
        print(f"{strategy:<10} {fmt(values):<24} {fmt(best):<16} {settings}")
    if base is not None and len(base) > 1:
        print("\nagainst random search (difference of means vs 2 × pooled standard deviation):")
        for strategy, values in hv.items():
            if strategy == "random" or len(values) < 2:
                continue
            diff = statistics.mean(values) - statistics.mean(base)
            pooled = ((statistics.variance(values) + statistics.variance(base)) / 2) ** 0.5
            verdict = "beats random" if diff > 2 * pooled else "does not beat random"
            print(f"  {strategy}: {diff:+.4f} vs 2σ = {2 * pooled:.4f} → {verdict}")
    figure = args.out / "demo_fronts.png"
    plot(runs, figure)
    if args.docs_copy:
        args.docs_copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(figure, args.docs_copy)
    print(f"\nfronts: {figure} (copy: {args.docs_copy})")


if __name__ == "__main__":
    main()
