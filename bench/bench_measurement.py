"""Measurement throughput and latency stability on a trained supernet.

    python bench/bench_measurement.py [--ckpt PATH] [--subnets 20] [--latency-runs 5]

Prints subnets measured per minute (accuracy after BN recalibration + measured CPU latency,
the work of one validation of `python search.py hardware=cpu`) and the run-to-run coefficient
of variation of measured latency (target ≤ 5%): each arch is measured `--latency-runs` times by
the configured meter, and CV = std / mean of those trimmed means.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hydra.utils import instantiate  # noqa: E402

from search.evaluation.images import ClassificationEvaluator  # noqa: E402
from search.hardware import LatencyMeter, MeasuredLatencyCost  # noqa: E402
from search.pipeline import find_latest_checkpoint  # noqa: E402
from supernet.checkpoint import load_supernet  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ckpt", default=None, help="checkpoint (default: newest under outputs/)")
    parser.add_argument("--subnets", type=int, default=20)
    parser.add_argument("--latency-runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", default="wall", choices=["wall", "process"],
                        help="latency clock (hardware.meter.clock)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = args.ckpt or find_latest_checkpoint(
        ROOT / "outputs", "supernet.mobilenetv3.model.MobileNetV3Supernet"
    )
    supernet, record = load_supernet(ckpt)
    datamodule = instantiate(record["data_config"])
    datamodule.setup("fit")
    evaluator = ClassificationEvaluator(supernet, datamodule)
    meter = LatencyMeter(device="cpu", batch_size=1, warmup=10, repeats=50, trim=0.1,
                         threads=args.threads, clock=args.clock)
    cost = MeasuredLatencyCost(meter).bind(supernet)
    rng = np.random.default_rng(0)
    archs = [supernet.space.sample(rng) for _ in range(args.subnets)]

    start = time.perf_counter()
    for arch in archs:
        evaluator([arch])
        cost(arch)
    per_minute = len(archs) / ((time.perf_counter() - start) / 60)

    cvs = []
    for arch in archs[:10]:
        runs = [cost.measure(arch)["latency_ms"] for _ in range(args.latency_runs)]
        cvs.append(statistics.stdev(runs) / statistics.mean(runs))
    print(f"checkpoint: {ckpt}")
    print(f"calibration images {evaluator.calib_images}, validation images {evaluator.val_images}, "
          f"latency: batch 1, {args.threads} thread(s), 10 warm-up + 50 timed runs, 10% trimmed, "
          f"{args.clock} clock")
    print(f"subnets measured per minute (accuracy + latency): {per_minute:.1f}")
    print(f"latency run-to-run CV over 10 archs x {args.latency_runs} runs: "
          f"median {100 * statistics.median(cvs):.2f}%, max {100 * max(cvs):.2f}%")


if __name__ == "__main__":
    main()
