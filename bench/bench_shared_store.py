"""Two concurrent same-seed searches on one measurement store: how many validations run twice?

    python bench/bench_shared_store.py                       # synthetic: 20 validations of 0.2 s
    python bench/bench_shared_store.py --budget 40 --sleep 0.5 --runs 3
    python bench/bench_shared_store.py --ckpt logs/train/runs/X/checkpoints/last.ckpt
    python bench/bench_shared_store.py --lut                 # latency-table entries instead

Synthetic mode: each run is a random search (the `random` strategy, same seed) on a toy space
through `Store.memoize`, with a deterministic evaluator that sleeps `--sleep` seconds per
validation and appends every architecture it actually validates to a file. Checkpoint mode
runs `search.py strategy=random hardware=flops` `--runs` times at once on one `store_path` and
reads each run's `summary.json` (measured now vs reused from the store).

Lookup-table mode (`--lut`) has `--runs` processes build the latency table of a small
MobileNetV3 supernet at once (real timing, CPU time on one thread each), first each on its own
store (what runs did before the tables took claims: every run times everything), then all on
one store, and prints both side by side: entries timed per run, entries timed twice, whether
the runs' tables are identical.

Duplicated = validations executed − distinct architectures. Without claims in the store each
run validates everything itself (19 of 20 twice, measured before claims existed); with them
every architecture is validated once and the runs share the work.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from search.problem import Problem  # noqa: E402
from search.store import Store  # noqa: E402
from search.strategies.random import RandomSearch  # noqa: E402
from supernet.space import Arch, Decision, SearchSpace  # noqa: E402

SPACE = SearchSpace("toy6x4", [Decision(f"d{i}", (0, 1, 2, 3)) for i in range(6)])
WEIGHTS = (3.0, 2.5, 2.0, 1.5, 1.0, 0.5)


def toy_accuracy(arch: Arch) -> float:
    """A deterministic accuracy: what a real evaluator gives for one arch, whoever runs it."""
    jitter = sum(map(ord, arch.arch_id)) % 97 / 97
    return 40.0 + sum(w * arch[f"d{i}"] for i, w in enumerate(WEIGHTS)) + jitter


def toy_cost(arch: Arch) -> dict[str, float]:
    return {"macs": float(sum((i + 1) * arch[f"d{i}"] for i in range(6))) + 1.0}


def run_search(
    store_path: str,
    calls_path: str,
    out_path: str,
    seed: int = 0,
    budget: int = 20,
    sleep: float = 0.2,
    lease_seconds: float | None = None,
    order: str = "forward",
) -> None:
    """One random search whose validations go through the store at `store_path`.

    Every arch the evaluator validates is appended to `calls_path`; the results (arch id and
    metrics per validation, in order) are written to `out_path` as JSON when the search ends.
    `order="reverse"` hands each batch to the store in reverse order (a run that wants the
    same archs in another order).
    """
    calls = Path(calls_path)

    def evaluate(archs: Sequence[Arch]) -> list[dict[str, float]]:
        out = []
        for arch in archs:
            with calls.open("a") as f:
                f.write(arch.arch_id + "\n")
            time.sleep(sleep)
            out.append({"accuracy": toy_accuracy(arch)})
        return out

    kwargs: dict[str, Any] = {} if lease_seconds is None else {"lease_seconds": lease_seconds}
    store = Store(store_path, **kwargs)
    memoized = store.memoize(evaluate, SPACE.name, "synthetic", {"evaluator": "toy", "v": 1})

    def validate(archs: Sequence[Arch]) -> list[dict[str, Any]]:
        if order == "reverse":
            return memoized(list(archs)[::-1])[::-1]
        return memoized(archs)

    problem = Problem(SPACE, ("accuracy", "macs"), None, validate, toy_cost, budget)
    RandomSearch(batch_size=budget).run(problem, np.random.default_rng(seed))
    rows = [[e.arch.arch_id, dict(e.measurement.metrics)] for e in problem.history]
    Path(out_path).write_text(json.dumps(rows))


def synthetic(runs: int, budget: int, sleep: float, seed: int, work: Path) -> dict[str, Any]:
    """`runs` concurrent same-seed searches on one fresh store; counts of what was validated."""
    ctx = mp.get_context("spawn")
    store = work / "store.sqlite"
    procs = []
    started = time.perf_counter()
    for i in range(runs):
        args = (str(store), str(work / f"calls{i}.txt"), str(work / f"out{i}.json"), seed,
                budget, sleep)
        procs.append(ctx.Process(target=run_search, args=args))
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    wall = time.perf_counter() - started
    if any(p.exitcode != 0 for p in procs):
        raise SystemExit(f"a search failed: exit codes {[p.exitcode for p in procs]}")
    per_run = [len(_lines(work / f"calls{i}.txt")) for i in range(runs)]
    results = [json.loads((work / f"out{i}.json").read_text()) for i in range(runs)]
    distinct = {arch_id for rows in results for arch_id, _ in rows}
    return {
        "mode": "synthetic", "runs": runs, "budget": budget, "sleep_s": sleep,
        "distinct": len(distinct), "executed_per_run": per_run,
        "duplicated": sum(per_run) - len(distinct), "identical_results": _all_equal(results),
        "wall_s": round(wall, 2), "one_run_alone_s": round(budget * sleep, 2),
    }


def checkpoint(runs: int, budget: int, seed: int, ckpt: str, work: Path) -> dict[str, Any]:
    """`runs` concurrent `search.py` processes on one checkpoint and one store."""
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    procs = []
    started = time.perf_counter()
    for i in range(runs):
        cmd = [sys.executable, "search.py", "strategy=random", "hardware=flops",
               f"budget={budget}", f"seed={seed}", f"ckpt_path={ckpt}",
               f"store_path={work / 'store.sqlite'}", "threads=1", "wandb.enabled=false",
               f"hydra.run.dir={work / f'run{i}'}"]
        log = (work / f"run{i}.log").open("w")
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log))
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - started
    if any(codes):
        raise SystemExit(f"a search failed (exit codes {codes}); logs in {work}")
    summaries = [json.loads((work / f"run{i}" / "summary.json").read_text()) for i in range(runs)]
    frames = [(work / f"run{i}" / "results.csv").read_text() for i in range(runs)]
    distinct = {line.split(",")[0] for f in frames for line in f.splitlines()[1:]}
    measured = [int(s["measured"]) for s in summaries]
    return {
        "mode": "checkpoint", "runs": runs, "budget": budget, "distinct": len(distinct),
        "executed_per_run": measured, "duplicated": sum(measured) - len(distinct),
        "reused_per_run": [int(s["reused_from_store"]) for s in summaries],
        "wall_s": round(wall, 2),
    }


LUT_NET = {  # a small supernet: its table (about 100 entries) builds in seconds
    "num_classes": 10, "in_channels": 1, "resolutions": (16, 20),
    "stage_channels": (8, 8, 16, 16, 24), "head_channels": (32, 48),
}  # fmt: skip


def build_table(store_path: str, out_path: str, pool: int) -> None:
    """One run building the latency table of `LUT_NET` through the store at `store_path`."""
    import torch

    from search.hardware import LatencyMeter
    from search.hardware.lookup_table import LatencyTableCost
    from supernet.mobilenetv3 import MobileNetV3Supernet

    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = MobileNetV3Supernet(**LUT_NET).eval()
    meter = LatencyMeter(warmup=1, repeats=5, clock="process")
    cost = LatencyTableCost(meter, pool=pool, progress=False).bind(net, store=Store(store_path))
    facts = {"measured": cost.measured, "reused": cost.reused, "entries": cost.table.entries}
    Path(out_path).write_text(json.dumps(facts))


def lut(runs: int, pool: int, work: Path) -> dict[str, Any]:
    """`runs` concurrent table builds, on separate stores and then on one store."""
    ctx = mp.get_context("spawn")
    facts: dict[str, Any] = {"mode": "lut", "runs": runs, "pool": pool}
    for setting in ("separate", "shared"):
        procs = []
        started = time.perf_counter()
        for i in range(runs):
            store = work / setting / (f"store{i}.sqlite" if setting == "separate" else "s.sqlite")
            store.parent.mkdir(exist_ok=True)
            out = work / setting / f"out{i}.json"
            procs.append(ctx.Process(target=build_table, args=(str(store), str(out), pool)))
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        if any(p.exitcode != 0 for p in procs):
            raise SystemExit(f"a table build failed: exit codes {[p.exitcode for p in procs]}")
        done = [json.loads((work / setting / f"out{i}.json").read_text()) for i in range(runs)]
        measured = [d["measured"] for d in done]
        distinct = {k for d in done for k in d["entries"]}
        facts[setting] = {
            "entries": len(distinct), "measured_per_run": measured,
            "reused_per_run": [d["reused"] for d in done],
            "duplicated": sum(measured) - len(distinct),
            "identical_tables": _all_equal([d["entries"] for d in done]),
            "wall_s": round(time.perf_counter() - started, 2),
        }  # fmt: skip
    return facts


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _all_equal(items: list[Any]) -> bool:
    return all(item == items[0] for item in items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="concurrent searches")
    parser.add_argument("--budget", type=int, default=20, help="validations per search")
    parser.add_argument("--sleep", type=float, default=0.2, help="seconds per validation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ckpt", default=None, help="run search.py on this checkpoint instead")
    parser.add_argument("--lut", action="store_true", help="concurrent latency-table builds")
    parser.add_argument("--pool", type=int, default=100, help="--lut: random archs to cover")
    args = parser.parse_args()
    if args.lut:
        with tempfile.TemporaryDirectory(prefix="shared_lut_") as tmp:
            facts = lut(args.runs, args.pool, Path(tmp))
        print(json.dumps(facts))
        for setting in ("separate", "shared"):
            f = facts[setting]
            print(f"{args.runs} concurrent table builds, {setting} store(s): {f['entries']} "
                  f"entries, timed per run {f['measured_per_run']}, {f['duplicated']} timed "
                  f"twice, identical tables: {f['identical_tables']}; {f['wall_s']} s wall")
        return
    with tempfile.TemporaryDirectory(prefix="shared_store_") as tmp:
        if args.ckpt:
            facts = checkpoint(args.runs, args.budget, args.seed, args.ckpt, Path(tmp))
        else:
            facts = synthetic(args.runs, args.budget, args.sleep, args.seed, Path(tmp))
    print(json.dumps(facts))
    total = sum(facts["executed_per_run"])
    print(f"{facts['runs']} concurrent same-seed searches of {facts['budget']} validations: "
          f"{facts['distinct']} distinct architectures, {total} validations executed "
          f"({facts['executed_per_run']} per run), {facts['duplicated']} duplicated; "
          f"{facts['wall_s']} s wall")


if __name__ == "__main__":
    main()
