"""Accuracy validations per minute: in this process, on 1 Ray worker, on 2 Ray workers.

    python bench/bench_distributed_measure.py [--ckpt PATH] [--subnets 24] [--workers 2]

The same subnets (seeded) are validated the way `python search.py workers=N` validates them
(BN recalibration on the calibration images, accuracy on the validation split), each worker
with `--threads` torch threads; worker start-up (loading the supernet and data) is timed
separately, and each mode first validates `--warmup` other subnets. Reported: subnets per minute
per mode, the speed-up of N workers over 1 (target ≥ 1.6 with 2 workers on a 2-core machine),
N workers over the in-process evaluator at 1 and at N threads, and whether every mode gave
identical accuracies. The load average is printed before and after: figures from a busy machine
understate the speed-up.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hydra.utils import instantiate  # noqa: E402

from search.evaluation.images import ClassificationEvaluator  # noqa: E402
from search.pipeline import find_latest_checkpoint  # noqa: E402
from supernet.checkpoint import load_supernet  # noqa: E402
from supernet.space import Arch  # noqa: E402

SUPERNET = "supernet.mobilenetv3.model.MobileNetV3Supernet"


def distinct_archs(space: Any, n: int, seed: int) -> list[Arch]:
    rng = np.random.default_rng(seed)
    found: dict[str, Arch] = {}
    while len(found) < n:
        arch = space.sample(rng)
        found[arch.arch_id] = arch
    return list(found.values())


def timed(measure: Callable[[Sequence[Arch]], Any], warmup: list[Arch], archs: list[Arch]):
    """(seconds, accuracies) of validating `archs` after validating `warmup`."""
    list(measure(warmup))
    start = time.perf_counter()
    results = list(measure(archs))
    return time.perf_counter() - start, [r["accuracy"] for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", default=None,
                        help="checkpoint (default: the newest MobileNetV3 one under outputs/)")
    parser.add_argument("--subnets", type=int, default=24, help="timed validations per mode")
    parser.add_argument("--warmup", type=int, default=2, help="untimed validations per mode")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--max-val-batches", type=int, default=None,
                        help="cap on validation batches (default: the whole split)")
    args = parser.parse_args()
    import ray

    from search.evaluation.distributed import RayEvaluator

    ckpt = Path(args.ckpt) if args.ckpt else find_latest_checkpoint(ROOT / "outputs", SUPERNET)
    supernet, record = load_supernet(ckpt)
    archs = distinct_archs(supernet.space, args.warmup + args.subnets, seed=0)
    warmup, archs = archs[: args.warmup], archs[args.warmup :]
    evaluation = {"max_val_batches": args.max_val_batches}
    load_before = os.getloadavg()

    datamodule = instantiate(record["data_config"])
    datamodule.prepare_data()
    datamodule.setup("fit")
    local = ClassificationEvaluator(supernet, datamodule, **evaluation)
    rows: list[tuple[str, float, float]] = []  # (mode, start-up seconds, seconds)
    accuracies: dict[str, list[float]] = {}
    for threads in sorted({args.threads, args.workers * args.threads}):
        torch.set_num_threads(threads)
        seconds, found = timed(local, warmup, archs)
        if threads == args.threads:  # the workers' thread count: the same floating-point sums
            accuracies["in-process"] = found
        rows.append((f"in-process, {threads} thread(s)", 0.0, seconds))
    torch.set_num_threads(args.threads)

    ray.init(num_cpus=args.workers * args.threads, include_dashboard=False,
             logging_level=logging.WARNING)
    try:
        for workers in sorted({1, args.workers}):
            start = time.perf_counter()
            remote = RayEvaluator(supernet, record["data_config"], evaluation, workers=workers,
                                  cpus_per_worker=args.threads)
            startup = time.perf_counter() - start
            try:
                mode = f"Ray, {workers} worker(s) x {args.threads} thread(s)"
                seconds, accuracies[mode] = timed(remote, warmup, archs)
            finally:
                remote.close()
            rows.append((mode, startup, seconds))
    finally:
        ray.shutdown()

    per_minute = {mode: len(archs) / seconds * 60 for mode, _, seconds in rows}
    print(f"checkpoint: {ckpt}")
    print(f"calibration images {local.calib_images}, validation images {local.val_images}; "
          f"{len(archs)} timed subnets after {len(warmup)} warm-up ones per mode")
    print(f"machine: {os.cpu_count()} CPUs; load average before "
          f"{load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    print(f"{'mode':<40} {'start-up s':>10} {'seconds':>9} {'subnets/min':>12}")
    for mode, startup, seconds in rows:
        print(f"{mode:<40} {startup:>10.1f} {seconds:>9.1f} {per_minute[mode]:>12.1f}")
    one = per_minute[f"Ray, 1 worker(s) x {args.threads} thread(s)"]
    many = per_minute[f"Ray, {args.workers} worker(s) x {args.threads} thread(s)"]
    print(f"speed-up, {args.workers} workers vs 1 worker: {many / one:.2f}x (target >= 1.6)")
    for threads in sorted({args.threads, args.workers * args.threads}):
        base = per_minute[f"in-process, {threads} thread(s)"]
        print(f"speed-up, {args.workers} workers vs in-process at {threads} thread(s): "
              f"{many / base:.2f}x")
    reference = next(iter(accuracies.values()))
    same = all(values == reference for values in accuracies.values())
    print(f"identical accuracies in process and on the workers ({args.threads} thread(s) each): "
          f"{'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
