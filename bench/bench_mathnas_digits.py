"""MathNAS and LayerNAS on the trained digits supernet, run through `search.py` as a user would.

(a) Predictor quality: one MathNAS run measures the block table, picks under MACs ≤ 50 % of the
    largest subnet's, and validates `--quality` random subnets to score its predictor
    (Spearman, Kendall τ, mean absolute error). From the same rows the bench also scores the
    other form of the predictor (plain additive vs FLOPs-corrected), the paper's ablation.
(b) Best validated accuracy under MACs ≤ 50 % of the largest subnet's: LayerNAS vs random search
    vs LINAS at the same budget of validations, over seeds; MathNAS's pick is listed as a
    reference at its own cost (the block table's validations).

Every run shares one measurement store, so a subnet validated by one run is read, not measured
again, by the next (validations still count against each run's budget). Runs whose
`summary.json` exists are not repeated (delete the run directory to redo one). Objectives are
accuracy and MACs (`hardware=flops`): no latency is measured.

    python bench/bench_mathnas_digits.py [--ckpt /work/runs/digits/checkpoints/last.ckpt]
        [--out /work/runs/digits_search] [--budget 300] [--seeds 0 1 2] [--quality 200]
        [--strategies layernas random linas] [--skip-quality] [--skip-compare] [--store S]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from search.mathnas.table import BlockTable  # noqa: E402
from search.strategies.mathnas import predictor_quality  # noqa: E402

TABLE_VALIDATIONS = 260  # room for the block table (~175 on this space) and the picks


def run_search(out: Path, name: str, overrides: list[str], timeout: float) -> dict[str, Any]:
    """`python search.py ...` into out/name (skipped when its summary exists); the summary."""
    run_dir = out / name
    summary = run_dir / "summary.json"
    if not summary.exists():
        cmd = [sys.executable, "search.py", *overrides, f"hydra.run.dir={run_dir}"]
        print("$", " ".join(cmd[1:]), flush=True)
        t0 = time.perf_counter()
        log = (out / f"{name}.log").open("w")
        subprocess.run(cmd, cwd=ROOT, check=True, timeout=timeout, stdout=log, stderr=log)
        print(f"  {time.perf_counter() - t0:.0f} s", flush=True)
    data: dict[str, Any] = json.loads(summary.read_text())
    return data


def common(args: argparse.Namespace, seed: int) -> list[str]:
    return [
        f"ckpt_path={args.ckpt}",
        "hardware=flops",
        "relative_constraints.macs=0.5",
        f"store_path={args.store or args.out / 'store.sqlite'}",
        "wandb.enabled=false",
        f"threads={args.threads}",
        f"seed={seed}",
    ]


def quality(args: argparse.Namespace) -> dict[str, Any]:
    """(a): the MathNAS run and both forms of its predictor on the same random subnets."""
    budget = TABLE_VALIDATIONS + args.quality
    s = run_search(
        args.out,
        "mathnas_s0",
        [
            *common(args, 0),
            "strategy=mathnas",
            f"strategy.quality_sample={args.quality}",
            f"budget={budget}",
        ],
        args.timeout,
    )
    extras = s["extras"]
    run_dir = args.out / "mathnas_s0"
    table = BlockTable.load(run_dir / "block_table.yaml")
    space = _space(run_dir)
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    picks = {e.get("arch_id") for e in extras["predicted_front"]}
    sample = [r for r in rows[extras["table_validations"] :] if r["arch_id"] not in picks]
    measured = np.array([r["accuracy"] for r in sample])
    choices = [space.node_choices(space.arch(r["arch"])) for r in sample]
    forms = {}
    for corrected in (True, False):
        predicted = np.array([table.predict_accuracy(c, corrected) for c in choices])
        forms["flops_corrected" if corrected else "plain"] = predictor_quality(predicted, measured)
    pick = next(e for e in extras["predicted_front"] if "arch_id" in e)
    # the plain additive form picks from the same table (read from the store: one new validation)
    plain = run_search(
        args.out,
        "mathnas_plain_s0",
        [
            *common(args, 0),
            "strategy=mathnas",
            "strategy.flops_correction=false",
            "strategy.quality_sample=0",
            f"budget={TABLE_VALIDATIONS}",
        ],
        args.timeout,
    )
    plain_pick = next(e for e in plain["extras"]["predicted_front"] if "arch_id" in e)
    return {
        "pick_plain": {
            "predicted_accuracy": plain_pick["predicted_accuracy"],
            "measured_accuracy": plain_pick["measured_accuracy"],
            "macs": plain_pick["costs"]["macs"],
        },
        "strategy_reported": extras["predictor_quality"],
        "recomputed_on": len(sample),
        "forms": forms,
        "table_validations": extras["table_validations"],
        "pick": {
            "predicted_accuracy": pick["predicted_accuracy"],
            "measured_accuracy": pick["measured_accuracy"],
            "macs": pick["costs"]["macs"],
            "macs_bound": s["constraints"]["macs"],
        },
        "solve_seconds": extras["solve_seconds"],
        "run_seconds": s.get("seconds"),
    }


def _space(run_dir: Path) -> Any:
    """The search space of the run's supernet (built from its resolved config)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(run_dir / "config_resolved.yaml")
    return instantiate(cfg.supernet).space


def compare(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """(b): best validated accuracy under the MACs bound per strategy and seed."""
    out: dict[str, list[dict[str, Any]]] = {}
    for seed in args.seeds:
        for strategy in args.strategies:
            s = run_search(
                args.out,
                f"{strategy}_s{seed}",
                [*common(args, seed), f"strategy={strategy}", f"budget={args.budget}"],
                args.timeout,
            )
            best = s["best"]["all"]
            extras = s["extras"]
            own = extras.get("best") if strategy == "layernas" else None
            out.setdefault(strategy, []).append(
                {
                    "seed": seed,
                    "validations": s["validations"],
                    "best_accuracy": None if best is None else best["metrics"]["accuracy"],
                    "best_macs": None if best is None else best["metrics"]["macs"],
                    "own_pick": None if own is None else own.get("score"),
                    "layers_completed": extras.get("layers_completed"),
                    "seconds": s.get("seconds"),
                    "reused_from_store": s.get("reused_from_store"),
                }
            )
    return out


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", default="/work/runs/digits/checkpoints/last.ckpt")
    parser.add_argument("--out", type=Path, default=Path("/work/runs/digits_search"))
    parser.add_argument("--budget", type=int, default=300, help="validations per compared run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quality", type=int, default=200, help="random subnets for (a)")
    parser.add_argument("--strategies", nargs="+", default=["layernas", "random", "linas"])
    parser.add_argument("--store", type=Path, default=None, help="default: OUT/store.sqlite")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per run")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-compare", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"ckpt": args.ckpt, "budget": args.budget}

    if not args.skip_quality:
        q = quality(args)
        report["quality"] = q
        print(f"\n(a) MathNAS predictor on {q['recomputed_on']} random subnets")
        print(f"{'predictor':>16} {'Spearman':>9} {'Kendall':>8} {'MAE (pp)':>9}")
        for form, v in q["forms"].items():
            print(f"{form:>16} {v['spearman']:9.3f} {v['kendall']:9.3f} {v['mae']:9.2f}")
        print(f"  the strategy's own report: {q['strategy_reported']}")
        p = q["pick"]
        print(
            f"  pick under MACs <= {p['macs_bound']:.4g}: predicted {p['predicted_accuracy']:.2f},"
            f" measured {p['measured_accuracy']:.2f} at {p['macs']:.4g} MACs after "
            f"{q['table_validations']} table validations; solve {q['solve_seconds']} s"
        )
        p = q["pick_plain"]
        print(
            f"  plain form's pick: predicted {p['predicted_accuracy']:.2f}, measured "
            f"{p['measured_accuracy']:.2f} at {p['macs']:.4g} MACs"
        )

    if not args.skip_compare:
        c = compare(args)
        report["compare"] = c
        print(f"\n(b) best accuracy (%) under MACs <= 50 % of the largest, budget {args.budget}")
        print("| strategy | seeds | best accuracy (mean ± sd) | per seed | validations |")
        print("|---|---|---|---|---|")
        for strategy, runs in c.items():
            accs = [r["best_accuracy"] for r in runs if r["best_accuracy"] is not None]
            per = ", ".join(
                "-" if r["best_accuracy"] is None else f"{r['best_accuracy']:.2f}" for r in runs
            )
            used = ", ".join(str(r["validations"]) for r in runs)
            print(f"| {strategy} | {len(runs)} | {_fmt(accs)} | {per} | {used} |")
        if "quality" in report:
            p = report["quality"]["pick"]
            n = report["quality"]["table_validations"]
            print(f"| mathnas (pick, corrected) | 1 | {p['measured_accuracy']:.2f} | - | {n} + 1 |")
            p = report["quality"]["pick_plain"]
            print(f"| mathnas (pick, plain) | 1 | {p['measured_accuracy']:.2f} | - | {n} + 1 |")
    (args.out / "bench.json").write_text(json.dumps(report, indent=1))
    print(f"\nfigures in {args.out / 'bench.json'}")


if __name__ == "__main__":
    main()
