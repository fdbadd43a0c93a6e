"""Summaries, figures and the markdown report of `bench/reproduce_tabular.py`."""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# published figures (LayerNAS arXiv 2304.11517, MathNAS arXiv 2311.04943); test accuracies of
# the networks found
PUBLISHED_LAYERNAS_SSS = {"cifar10": 93.20, "cifar100": 70.64, "imagenet16_120": 45.37}
PUBLISHED_MATHNAS_NB201 = {"cifar10": 93.31, "cifar100": 70.82, "imagenet16_120": 46.53}
PUBLISHED_NB201_OPTIMUM = {"cifar10": 94.37, "cifar100": 73.51, "imagenet16_120": 47.31}
PUBLISHED_MATHNAS_SPEARMAN = 0.97
LAYERNAS_TARGET = 0.15


def _group(results: Sequence[Mapping[str, Any]]) -> dict[tuple, list[Mapping[str, Any]]]:
    out: dict[tuple, list[Mapping[str, Any]]] = defaultdict(list)
    for r in results:
        out[tuple(r["key"])].append(r)
    return out


def _stats(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return {"mean": float("nan"), "q25": float("nan"), "q75": float("nan"), "n": 0}
    q25, q75 = np.percentile(v, [25, 75])
    return {"mean": float(v.mean()), "q25": float(q25), "q75": float(q75), "n": int(len(v))}


def _at(run: Mapping[str, Any], looks: int) -> tuple[float, str | None]:
    """Best feasible value and arch after `looks` look-ups (NaN, None before any)."""
    best: tuple[float, str | None] = (float("nan"), None)
    for i, value, arch in run["steps"]:
        if i <= looks:
            best = (value, arch)
    return best


def sss_summary(results, benches, baselines, args: argparse.Namespace) -> dict[str, Any]:
    groups = _group(results)
    out: dict[str, Any] = {}
    checkpoints = [c for c in (100, 200, 400) if c <= args.budget] or [args.budget]
    for ds in args.datasets:
        bench = benches[("sss", ds, "90ep")]
        arch, optimum = bench.best_feasible(bench.relative({"macs": 0.5}))
        rows: dict[str, Any] = {}
        for (section, d, _, name, _), runs in groups.items():
            if section != "sss" or d != ds:
                continue
            row: dict[str, Any] = {"seeds": len(runs), "cpu": sum(r["cpu"] for r in runs)}
            row["used"] = float(np.mean([r["used"] for r in runs]))
            for c in checkpoints:
                regrets = [optimum - _at(r, c)[0] for r in runs]
                row[f"regret@{c}"] = _stats(regrets)
                row[f"found@{c}"] = float(np.mean([x <= 1e-9 for x in regrets]))
            rows[name] = row
        base = baselines[ds]
        out[ds] = {
            "optimum": optimum,
            "optimum_arch": bench.space.to_string(arch),
            "bound_macs": bench.relative({"macs": 0.5})["macs"],
            "checkpoints": checkpoints,
            "strategies": rows,
            "no_search": {
                **base,
                "regret": None if base["value"] is None else optimum - base["value"],
            },
        }
    return out


def nb201_summary(results, benches, args: argparse.Namespace) -> dict[str, Any]:
    groups = _group(results)
    out: dict[str, Any] = {}
    for setting in args.nb201_validation:
        for ds in args.datasets:
            bench = benches[("nb201", ds, setting)]
            for f in args.fractions:
                cons = bench.relative({"macs": f})
                arch, optimum = bench.best_feasible(cons)
                mask = bench.feasible_mask(cons)
                cell: dict[str, Any] = {
                    "optimum": optimum,
                    "optimum_arch": bench.space.to_string(arch),
                    "optimum_test": bench.test_accuracy(arch),
                    "best_test": float(np.max(bench.test_acc[mask])),
                    "variants": {},
                }
                randoms = groups.get(("nb201", ds, setting, "random", f), [])
                for name in dict.fromkeys(k[3] for k in groups if k[:3] == ("nb201", ds, setting)):
                    runs = groups.get(("nb201", ds, setting, name, f), [])
                    if name == "random" or not runs:
                        continue
                    looks = int(round(np.mean([r["used"] for r in runs])))
                    quality = [r["quality"] for r in runs if "quality" in r] or [
                        r["quality"]
                        for r in groups[("nb201", ds, setting, name, args.fractions[0])]
                        if "quality" in r
                    ]
                    rand = [_at(r, looks) for r in randoms]
                    cell["variants"][name] = {
                        "seeds": len(runs),
                        "lookups": looks,
                        "table_validations": float(np.mean([r["table_validations"] for r in runs])),
                        "regret": _stats([optimum - _at(r, r["used"])[0] for r in runs]),
                        "pick_regret": _stats(
                            [optimum - r["pick"] if r["pick"] is not None else np.nan for r in runs]
                        ),
                        "picks_infeasible": float(np.mean([r["picks_infeasible"] for r in runs])),
                        "test": _stats([_test(bench, _at(r, r["used"])[1]) for r in runs]),
                        "random_regret": _stats([optimum - v for v, _ in rand]),
                        "random_test": _stats([_test(bench, a) for _, a in rand]),
                        "quality": {k: float(np.mean([q[k] for q in quality])) for k in quality[0]}
                        if quality
                        else {},
                    }
                out.setdefault(setting, {}).setdefault(ds, {})[str(f)] = cell
    return out


def _test(bench, arch: str | None) -> float:
    return bench.test_accuracy(arch) if arch is not None else float("nan")


# --- figures -------------------------------------------------------------------------------
def _curves(runs: Sequence[Mapping[str, Any]], optimum: float) -> tuple[np.ndarray, ...]:
    regret = optimum - np.stack([r["curve"] for r in runs])
    ok = np.isfinite(regret).all(axis=0)  # only where every run has a feasible network
    x = np.arange(1, regret.shape[1] + 1)
    q25, q75 = np.percentile(np.where(ok, regret, 0), [25, 75], axis=0)
    return x[ok], regret.mean(axis=0)[ok], q25[ok], q75[ok]


def plot_sss(results, summary, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _group(results)
    datasets = list(summary)
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for ax, ds in zip(axes[0], datasets, strict=True):
        optimum = summary[ds]["optimum"]
        for (section, d, _, name, _), runs in sorted(groups.items()):
            if section != "sss" or d != ds:
                continue
            x, mean, q25, q75 = _curves(runs, optimum)
            (line,) = ax.plot(x, mean, label=f"{name} ({len(runs)})")
            ax.fill_between(x, q25, q75, color=line.get_color(), alpha=0.15)
        base = summary[ds]["no_search"]
        if base["regret"] is not None:
            ax.plot([base["used"]], [base["regret"]], "k*", ms=10, label="one-layer-off largest")
        ax.set_yscale("symlog", linthresh=0.05)
        ax.set_title(f"NATS size, {ds}, FLOPs ≤ 50%")
        ax.set_xlabel("look-ups")
        ax.set_ylabel("regret (validation accuracy, points)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_nb201(results, summary, setting: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _group(results)
    cells = summary[setting]
    datasets = list(cells)
    fractions = list(next(iter(cells.values())))
    fig, axes = plt.subplots(
        len(datasets),
        len(fractions),
        squeeze=False,
        figsize=(4.5 * len(fractions), 3.4 * len(datasets)),
    )
    for i, ds in enumerate(datasets):
        for j, f in enumerate(fractions):
            ax = axes[i][j]
            cell = cells[ds][f]
            runs = groups.get(("nb201", ds, setting, "random", float(f)), [])
            if runs:
                x, mean, q25, q75 = _curves(runs, cell["optimum"])
                ax.plot(x, mean, color="gray", label=f"random ({len(runs)})")
                ax.fill_between(x, q25, q75, color="gray", alpha=0.2)
            for name, v in cell["variants"].items():
                r = v["regret"]
                ax.errorbar(
                    [v["lookups"]],
                    [r["mean"]],
                    fmt="o",
                    capsize=3,
                    label=name,
                    # the mean can lie outside the quartiles of a skewed distribution
                    yerr=[[max(r["mean"] - r["q25"], 0.0)], [max(r["q75"] - r["mean"], 0.0)]],
                )
            ax.set_yscale("symlog", linthresh=0.1)
            ax.set_title(f"NB201 {ds}, FLOPs ≤ {float(f):.0%} ({setting})", fontsize=9)
            ax.set_xlabel("look-ups")
            ax.set_ylabel("regret")
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- markdown --------------------------------------------------------------------------------
def _fmt(s: Mapping[str, float]) -> str:
    if not s or not s.get("n"):
        return "–"
    return f"{s['mean']:.3f} [{s['q25']:.2f}, {s['q75']:.2f}]"


def sss_markdown(summary: Mapping[str, Any]) -> list[str]:
    lines = ["## NATS-Bench size, FLOPs ≤ 50% of the largest", ""]
    checks = []
    for ds, cell in summary.items():
        cps = cell["checkpoints"]
        lines += [
            f"### {ds}: optimum {cell['optimum']:.3f} (`{cell['optimum_arch']}`)",
            "",
            "| strategy | seeds | look-ups | "
            + " | ".join(f"regret@{c} mean [IQR]" for c in cps)
            + f" | found optimum@{cps[-1]} | CPU s (sum) |",
            "|" + "---|" * (5 + len(cps)),
        ]
        for name, row in cell["strategies"].items():
            lines.append(
                f"| {name} | {row['seeds']} | {row['used']:.0f} | "
                + " | ".join(_fmt(row[f"regret@{c}"]) for c in cps)
                + f" | {row[f'found@{cps[-1]}']:.0%} | "
                f"{row['cpu']:.0f} |"
            )
        base = cell["no_search"]
        if base["regret"] is None:
            lines += [
                f"| one-layer-off largest (no search) | – | {base['used']} | "
                + " | ".join("none feasible" for _ in cps)
                + " | no | – |",
                "",
            ]
        else:
            lines += [
                f"| one-layer-off largest (no search) | – | {base['used']} | "
                + " | ".join(f"{base['regret']:.3f}" for _ in cps)
                + f" | {'yes' if base['regret'] <= 1e-9 else 'no'} | – |",
                "",
            ]
        rows = cell["strategies"]
        if "layernas" in rows:
            last = rows["layernas"][f"regret@{cps[-1]}"]["mean"]
            checks.append(
                f"- {ds}: LayerNAS mean regret within {cps[-1]} look-ups "
                f"{last:.3f} ≤ {LAYERNAS_TARGET}: "
                f"{'PASS' if last <= LAYERNAS_TARGET else 'FAIL'}"
            )
            if "evolution" in rows:
                worse = [
                    c
                    for c in cps
                    if rows["layernas"][f"regret@{c}"]["mean"]
                    > rows["evolution"][f"regret@{c}"]["mean"] + 1e-9
                ]
                checks.append(
                    f"- {ds}: LayerNAS no worse than regularized evolution at "
                    f"{cps}: {'PASS' if not worse else f'FAIL at {worse}'}"
                )
    pub = ", ".join(f"{k} {v}" for k, v in PUBLISHED_LAYERNAS_SSS.items())
    lines += [
        "Published (LayerNAS, test accuracy of the network found): " + pub + ". These "
        "tables hold validation accuracy only, so the comparison is by regret.",
        "",
        "Targets:",
        *checks,
        "",
    ]
    return lines


def nb201_markdown(summary: Mapping[str, Any]) -> list[str]:
    lines = [
        "## NAS-Bench-201, MathNAS vs random search at equal look-ups",
        "",
        "`mathnas` is the paper: block drops in the single average-FLOPs context (m·n "
        "look-ups), one solver pick. `mathnas_avgC`: drops averaged over C sampled contexts "
        "(Eq. 3). `mathnas_topK`: the K best predicted networks validated. "
        "`mathnas_topK_refitR`: the same K validations in R rounds, the drops refitted on "
        "every validated network between rounds (ridge towards the measured table); its "
        "rank correlations are those of the final refitted table. `mathnas_avgC_topK`: both. "
        "Random search gets as many look-ups as the variant used.",
        "",
    ]
    checks = []
    wins: dict[str, list[Any]] = {}
    for setting, by_ds in summary.items():
        lines += [
            f"### searched on: {setting}",
            "",
            "| dataset | FLOPs ≤ | optimum (test) | method | seeds | look-ups | regret "
            "[IQR] | pick regret | random regret [IQR] | test acc | random test acc | "
            "Spearman val / test | Kendall val / test |",
            "|" + "---|" * 13,
        ]
        for ds, by_f in by_ds.items():
            for f, cell in by_f.items():
                for name, v in cell["variants"].items():
                    q = v["quality"]
                    lines.append(
                        f"| {ds} | {float(f):.0%} | {cell['optimum']:.2f} "
                        f"({cell['optimum_test']:.2f}) | {name} | {v['seeds']} | {v['lookups']} "
                        f"| {_fmt(v['regret'])} | {_fmt(v['pick_regret'])} | "
                        f"{_fmt(v['random_regret'])} | {v['test']['mean']:.2f} | "
                        f"{v['random_test']['mean']:.2f} | {q.get('spearman_val', np.nan):.2f} / "
                        f"{q.get('spearman_test', np.nan):.2f} | {q.get('kendall_val', np.nan):.2f}"
                        f" / {q.get('kendall_test', np.nan):.2f} |"
                    )
                    ok = v["regret"]["mean"] < v["random_regret"]["mean"]
                    tally = wins.setdefault(name, [0, 0, [], [], []])
                    tally[0] += ok
                    tally[1] += 1
                    tally[2].append(v["lookups"])
                    tally[3].append(q.get("spearman_val", np.nan))
                    tally[4].append(q.get("kendall_val", np.nan))
                    if name.startswith("mathnas_top"):  # m·n + k look-ups: the target
                        checks.append(
                            f"- {setting} {ds} {float(f):.0%}: {name} regret "
                            f"{v['regret']['mean']:.3f} < random "
                            f"{v['random_regret']['mean']:.3f} at {v['lookups']} "
                            f"look-ups: {'PASS' if ok else 'FAIL'}"
                        )
        lines.append("")
    lines += [
        "### Variants over every dataset, constraint and accuracy column",
        "",
        "| method | look-ups | cells with mean regret below random's | Spearman val | "
        "Kendall val |",
        "|---|---|---|---|---|",
    ]
    for name, (ok, n, looks, sp, kt) in wins.items():
        lines.append(
            f"| {name} | {min(looks)}–{max(looks)} | {ok}/{n} | {np.nanmean(sp):.2f} | "
            f"{np.nanmean(kt):.2f} |"
        )
    lines.append("")
    pub = ", ".join(
        f"{k} {v} (optimum {PUBLISHED_NB201_OPTIMUM[k]})"
        for k, v in PUBLISHED_MATHNAS_NB201.items()
    )
    lines += [
        "Published (MathNAS, test accuracy of the network found, constraint not stated): "
        f"{pub}; predicted-vs-true Spearman {PUBLISHED_MATHNAS_SPEARMAN}.",
        "Regret counts every look-up (the block-table networks too); pick regret only the "
        "validated solver picks (the paper's answer).",
        "",
        "Targets:",
        *checks,
        "",
    ]
    return lines


def write_report(summary, results, out: Path, args: argparse.Namespace) -> str:
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Tabular benchmark reproduction",
        "",
        f"Command: `{summary['command']}` (data: `{args.data_dir}`).",
        "",
        f"Total: {summary['total_wall_seconds']:.0f} s wall clock and "
        f"{summary['total_cpu_seconds']:.0f} s CPU (this process and its workers; figures "
        f"not included) with {args.workers} worker(s); the runs took "
        f"{summary['wall_seconds']:.0f} s wall, "
        f"{summary['load_seconds']:.0f} s of it loading the tables. CPU time of the runs: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in summary["cpu_seconds"].items())
        + " (wall time of the runs: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in summary["run_seconds"].items())
        + "; more than CPU time when other processes share the cores).",
        "",
    ]
    if not args.run_first_picks:
        lines += [
            "Top-1 MathNAS rows (`mathnas`, `mathnas_avgC`) are read from the top-k runs of the "
            "same seed: the same table, then the first pick of the same ranking (so they show "
            "no CPU time of their own); `--run-first-picks` runs them separately.",
            "",
        ]
    if "sss" in summary:
        plot_sss(results, summary["sss"], out / "sss_regret.png")
        lines += sss_markdown(summary["sss"]) + ["![NATS size regret](sss_regret.png)", ""]
    if "nb201" in summary:
        nb = summary["nb201"]
        for setting in nb:
            plot_nb201(results, nb, setting, out / f"nb201_regret_{setting}.png")
        lines += nb201_markdown(nb)
        lines += [f"![NB201 regret {s}](nb201_regret_{s}.png)" for s in nb] + [""]
    text = "\n".join(lines)
    (out / "report.md").write_text(text)
    return text
