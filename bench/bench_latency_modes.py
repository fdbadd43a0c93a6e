"""Latency modes side by side: eager PyTorch, CUDA-graph replays (CUDA only), ONNX Runtime (CPU).

Part 5 of `bench_gpu.py`, also runnable alone. For each mode, the batch-1 latency of
`--latency-subnets` random subnets of the benchmark's MobileNetV3 supernet, each measured
`--latency-repeats` times (every measurement exports and times the subnet afresh), with the
spread across the repeats; then Kendall's tau between every two modes over `--tau-subnets`
subnets (one measurement each): whether the modes rank subnets alike. The modes are measured in
turn for each subnet, so changes in load hit them alike. Latency is wall time.

    python bench/bench_latency_modes.py [--device cpu] [--tau-subnets 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.hardware import LatencyMeter, MeasuredLatencyCost, OnnxRuntimeCost  # noqa: E402
from supernet.mobilenetv3 import MobileNetV3Supernet  # noqa: E402


def cost_models(device: torch.device, warmup: int, repeats: int) -> dict[str, Any]:
    """The latency cost models of each mode (ONNX Runtime always on the CPU)."""

    def meter(dev: str, mode: str = "eager") -> LatencyMeter:
        return LatencyMeter(dev, batch_size=1, warmup=warmup, repeats=repeats, mode=mode)

    models: dict[str, Any] = {"eager": MeasuredLatencyCost(meter(device.type))}
    if device.type == "cuda":
        models["cuda_graph"] = MeasuredLatencyCost(meter("cuda", "cuda_graph"))
    models["onnxruntime"] = OnnxRuntimeCost(meter("cpu"))
    return models


def latency_modes(device: torch.device, net: MobileNetV3Supernet, args: Any) -> dict[str, float]:
    """Prints the per-mode latencies, their spread and Kendall's tau; returns the taus."""
    net = net.eval()
    models = {m: c.bind(net) for m, c in cost_models(device, args.warmup, args.timed).items()}
    rng = np.random.default_rng(1)
    archs = [net.space.sample(rng) for _ in range(max(args.tau_subnets, args.latency_subnets))]
    first: dict[str, list[float]] = {m: [] for m in models}
    spread: dict[str, list[list[float]]] = {m: [] for m in models}
    with torch.no_grad():
        for i, arch in enumerate(archs):
            times = args.latency_repeats if i < args.latency_subnets else 1
            runs: dict[str, list[float]] = {m: [] for m in models}
            for _ in range(times):
                for mode, model in models.items():
                    runs[mode].append(model.measure(arch)["latency_ms"])
            for mode in models:
                first[mode].append(runs[mode][0])
                if i < args.latency_subnets:
                    spread[mode].append(runs[mode])
    print(
        f"\n[5] batch-1 latency (wall time, ms) of {args.latency_subnets} subnets, "
        f"{args.latency_repeats} repeats each (mean; spread = (max - min) / mean)"
    )
    print(f"{'subnet':<8}" + "".join(f"{m:>24}" for m in models))
    for i in range(args.latency_subnets):
        cells = []
        for mode in models:
            r = spread[mode][i]
            mean = statistics.mean(r)
            cells.append(f"{mean:>14.3f} ({(max(r) - min(r)) / mean:>6.1%})")
        print(f"{i + 1:<8}" + "".join(f"{c:>24}" for c in cells))
    for mode in models:
        rel = [(max(r) - min(r)) / statistics.mean(r) for r in spread[mode]]
        print(
            f"  {mode}: median spread {statistics.median(rel):.1%}, "
            f"median latency {statistics.median(first[mode]):.3f} ms"
        )
    taus = {}
    n = len(archs)
    for a, b in combinations(models, 2):
        tau = float(kendalltau(first[a], first[b]).statistic)
        taus[f"{a}/{b}"] = tau
        print(f"  Kendall tau {a} vs {b} over {n} subnets: {tau:.3f}")
    return taus


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--latency-subnets", type=int, default=10)
    parser.add_argument("--latency-repeats", type=int, default=5)
    parser.add_argument("--tau-subnets", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs per measurement")
    parser.add_argument("--timed", type=int, default=20, help="timed runs per measurement")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default)
    parser.add_argument("--resolution", type=int, help="default 224 on CUDA, 64 on the CPU")
    add_arguments(parser)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    resolution = args.resolution or (224 if device.type == "cuda" else 64)
    net = MobileNetV3Supernet(num_classes=1000, resolutions=(resolution,)).to(device)
    latency_modes(device, net, args)


if __name__ == "__main__":
    main()
