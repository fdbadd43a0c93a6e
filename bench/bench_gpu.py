"""The GPU path in figures: what weight sharing costs per step, launch overhead, throughput.

One run prints, side by side:

1. MobileNetV3 (OFA w1.0, 1,000 classes, ImageNet strides) training steps, supernet with the
   subnet active against the same subnet exported as a static network, for the largest, the
   smallest and `--random` random subnets. A step is set_active (supernet only) + forward +
   cross-entropy + backward. Two gradient states: `accumulating` (the subnet's gradients are
   added to existing ones, as for the 2nd to 4th subnets of a sandwich step) and `fresh`
   (`.grad` is None first, as for the first subnet of a step). Each of those rows repeats one
   subnet, so what a subnet costs the first time it is set (validating the arch, laying out
   its slices) is paid once; the row `new each` takes a different random subnet at every
   step, as training does (accumulating).
2. The small-batch step against the large-batch step of the supernet (what the small batch
   costs is overhead: Python and kernel launches), random subnet.
3. Sandwich-rule training (largest + smallest + 2 random, in-place distillation, SGD step):
   images/s.
4. The Transformer supernet (HAT, WMT widths on CUDA, the CPU twin's widths on the CPU):
   train-step tokens/s of the supernet against its exported SubTransformer.
5. Latency modes (`search.hardware`): the latency of `--latency-subnets` subnets per mode with
   the spread over `--latency-repeats` repeats, and Kendall's tau between modes over
   `--tau-subnets` subnets.
6. Where the time goes: `torch.profiler` over the smallest subnet's steps, supernet and static
   export side by side, the operators whose self time differs most.

On CUDA: 224-px inputs, batch 128 against 2, bf16 autocast, channels-last. On the CPU (the
proxy for Python overhead): 64-px inputs (the smallest at which batch 1 trains: the last
feature map is 2×2), batch 1 against 16, fp32, one thread, CPU time of the process (steadier
on a shared machine), denormals flushed (x86 slows down on tiny gradients by 10-100×, which
is not what this measures), and glibc's malloc told to keep freed memory mapped (`--malloc
keep`: as the CUDA caching allocator does; by default glibc returns large blocks to the kernel
and a step's page faults, which depend on what the process allocated before, can cost more
than the step itself). Timings alternate between the contenders; figures are medians,
ratios the median of paired ratios; `best` is the ratio of the fastest runs, which a shared
machine's bursts of load move least. The last line is the random-subnet step ratio.

    python bench/bench_gpu.py [--device cuda|cpu] [--random 5] [--repeats 10] [--skip 3,4]
                              [--malloc keep|default]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._timing import interleaved, keep_freed_memory, paired_ratio, time_once  # noqa: E402
from bench.bench_latency_modes import add_arguments, latency_modes  # noqa: E402
from bench.bench_transformer_speed import SCALES, train_step_overhead  # noqa: E402
from supernet.mobilenetv3 import MobileNetV3Supernet  # noqa: E402
from supernet.module import soft_cross_entropy  # noqa: E402
from supernet.recipes import SandwichRule  # noqa: E402
from supernet.space import Arch  # noqa: E402
from supernet.transformer.model import TransformerSupernet  # noqa: E402

PROFILES = {
    "cuda": {
        "resolution": 224,
        "step_batch": 128,
        "batch": 128,
        "small_batch": 2,
        "bf16": True,
        "scale": "hat_wmt",
    },
    "cpu": {
        "resolution": 64,
        "step_batch": 1,
        "batch": 16,
        "small_batch": 1,
        "bf16": False,
        "scale": "cpu",
    },
}


class Bench:
    """Device, clock and precision of one run."""

    def __init__(self, device: str, threads: int) -> None:
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.profile = dict(PROFILES["cuda" if self.cuda else "cpu"])
        self.threads = threads
        one_cpu_thread = not self.cuda and threads == 1
        self.clock: Callable[[], float] = time.process_time if one_cpu_thread else time.perf_counter
        self.sync: Callable[[], object] = (
            (lambda: torch.cuda.synchronize(self.device)) if self.cuda else (lambda: None)
        )

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.profile["bf16"]:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def images(self, batch: int, resolution: int, classes: int) -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch, 3, resolution, resolution, generator=g)
        y = torch.randint(0, classes, (batch,), generator=g)
        x = x.to(self.device).contiguous(memory_format=torch.channels_last)
        return x, y.to(self.device)


def mobilenet(bench: Bench) -> MobileNetV3Supernet:
    torch.manual_seed(0)
    net = MobileNetV3Supernet(num_classes=1000, resolutions=(bench.profile["resolution"],))
    return net.to(bench.device).train().to(memory_format=torch.channels_last)


def step(
    bench: Bench,
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    arch: Arch | None,
    fresh: bool,
) -> Callable[[], None]:
    """One training step of `model` (the supernet when `arch` is given: it is set active)."""

    def run() -> None:
        if arch is not None:
            model.set_active(arch)  # type: ignore[operator]
        if fresh:
            model.zero_grad(set_to_none=True)
        with bench.autocast():
            loss = F.cross_entropy(model(x), y)
        loss.backward()

    return run


def subnet_steps(
    bench: Bench, net: MobileNetV3Supernet, archs: dict[str, Arch], repeats: int
) -> dict[str, float]:
    """Part 1: supernet vs static step per subnet; returns the accumulating ratio per subnet."""
    x, y = bench.images(bench.profile["step_batch"], bench.profile["resolution"], 1000)
    print(
        f"\n[1] training step, batch {x.shape[0]} at {x.shape[-1]} px: supernet vs exported "
        "static subnet (ms)"
    )
    print(
        f"{'subnet':<10}{'MMACs':>8} | accumulating: {'static':>7} {'supernet':>8} {'ratio':>6}"
        f" {'best':>6} | fresh .grad: {'static':>7} {'supernet':>8} {'ratio':>6}"
    )
    ratios = {}
    for name, arch in archs.items():
        static = net.export_subnet(arch).train().to(memory_format=torch.channels_last)
        fns = {
            "sup": step(bench, net, x, y, arch, fresh=False),
            "static": step(bench, static, x, y, None, fresh=False),
            "sup_fresh": step(bench, net, x, y, arch, fresh=True),
            "static_fresh": step(bench, static, x, y, None, fresh=True),
        }
        t = interleaved(fns, repeats, bench.clock, bench.sync, warmup=3 if bench.cuda else 2)
        med = {k: statistics.median(v) * 1e3 for k, v in t.items()}
        ratios[name] = paired_ratio(t, "sup", "static")
        fresh = paired_ratio(t, "sup_fresh", "static_fresh")
        best = min(t["sup"]) / min(t["static"])
        macs = net.macs(arch) / 1e6
        print(
            f"{name:<10}{macs:>8.0f} | {'':>13} {med['static']:>7.2f} {med['sup']:>8.2f} "
            f"{ratios[name]:>6.3f} {best:>6.3f} | {'':>12} {med['static_fresh']:>7.2f} "
            f"{med['sup_fresh']:>8.2f} {fresh:>6.3f}"
        )
        del static
    return ratios


def new_random_steps(
    bench: Bench, net: MobileNetV3Supernet, rng: np.random.Generator, repeats: int
) -> float:
    """Part 1, last row: a different random subnet at every step, as in training, where each
    step samples new subnets (its first `set_active` and slice layout are in the step), paired
    with the same subnet's static export; returns the accumulating ratio.

    Without the untimed static step first, the first-time kernel set-up for each new shape
    (oneDNN on the CPU) falls on one contender or the other and moves this ratio by ±0.15.
    """
    x, y = bench.images(bench.profile["step_batch"], bench.profile["resolution"], 1000)
    warmup = 3 if bench.cuda else 2
    archs = [net.space.sample(rng) for _ in range(warmup + repeats)]
    t: dict[str, list[float]] = {"sup": [], "static": []}
    for i, arch in enumerate(archs):
        model = net.export_subnet(arch).train().to(memory_format=torch.channels_last)
        fns = {"sup": step(bench, net, x, y, arch, fresh=False),
               "static": step(bench, model, x, y, None, fresh=False)}  # fmt: skip
        # oneDNN and cuDNN set up kernels for each new shape, at a cost that has nothing to do
        # with weight sharing and would fall on whichever contender ran the shapes first: an
        # untimed static step sets them up for both
        fns["static"]()
        for name in ("sup", "static") if i % 2 == 0 else ("static", "sup"):
            seconds = time_once(fns[name], bench.clock, bench.sync)
            if i >= warmup:
                t[name].append(seconds)
    ratio = paired_ratio(t, "sup", "static")
    med = {k: statistics.median(v) * 1e3 for k, v in t.items()}
    best = min(t["sup"]) / min(t["static"])
    print(
        f"{'new each':<10}{'':>8} | {'':>13} {med['static']:>7.2f} {med['sup']:>8.2f} "
        f"{ratio:>6.3f} {best:>6.3f} | ({repeats} random subnets timed, one per step)"
    )
    return ratio


def overhead(bench: Bench, net: MobileNetV3Supernet, arch: Arch, repeats: int) -> None:
    """Part 2: the small-batch step against the large-batch step (supernet, accumulating)."""
    r, small, large = (bench.profile[k] for k in ("resolution", "small_batch", "batch"))
    xs, ys = bench.images(small, r, 1000)
    xl, yl = bench.images(large, r, 1000)
    fns = {
        "small": step(bench, net, xs, ys, arch, False),
        "large": step(bench, net, xl, yl, arch, False),
    }
    t = interleaved(fns, repeats, bench.clock, bench.sync, warmup=2)
    s, lg = (statistics.median(t[k]) * 1e3 for k in ("small", "large"))
    print(
        f"\n[2] supernet step, random subnet: batch {small} {s:.2f} ms, batch {large} "
        f"{lg:.2f} ms; small/large {s / lg:.2f} (GPU target <= 0.40)"
    )


def sandwich(bench: Bench, net: MobileNetV3Supernet, steps: int) -> None:
    """Part 3: sandwich-rule training steps (as `SupernetModule.training_step`), images/s."""
    batch = bench.profile["batch"]
    x, y = bench.images(batch, bench.profile["resolution"], 1000)
    recipe = SandwichRule(num_random=2)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, nesterov=True)

    def train_step(i: int) -> None:
        plan = recipe.plan(net.space, 0, i)
        opt.zero_grad(set_to_none=True)
        soft: torch.Tensor | None = None
        for k, arch in enumerate(plan.archs):
            net.set_active(arch)
            with bench.autocast():
                logits = net(x)
                distill = soft is not None
                loss = soft_cross_entropy(logits, soft) if distill else F.cross_entropy(logits, y)
            if k == 0:
                soft = F.softmax(logits.detach().float(), dim=1)
            loss.backward()
        opt.step()

    train_step(0)
    times = []
    for i in range(1, steps + 1):
        bench.sync()
        start = bench.clock()
        train_step(i)
        bench.sync()
        times.append(bench.clock() - start)
    med = statistics.median(times)
    print(
        f"\n[3] sandwich rule (4 subnets + SGD step), batch {batch}: {med * 1e3:.1f} ms/step, "
        f"{batch / med:.0f} images/s, {1 / med:.2f} steps/s"
    )


def where_time_goes(
    bench: Bench, net: MobileNetV3Supernet, arch: Arch, steps: int
) -> dict[str, dict[str, tuple[float, float]]]:
    """Part 6: `torch.profiler` over `steps` accumulating steps of `arch`, supernet and static
    export: the operators whose self time per step differs most (CPU, and the GPU on CUDA).

    Returns `{"supernet" | "static": {operator: (CPU ms, GPU ms) per step}}`.
    """
    x, y = bench.images(bench.profile["step_batch"], bench.profile["resolution"], 1000)
    static = net.export_subnet(arch).train().to(memory_format=torch.channels_last)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if bench.cuda else [])
    per_step: dict[str, dict[str, tuple[float, float]]] = {}
    for name, model, active in (("supernet", net, arch), ("static", static, None)):
        run = step(bench, model, x, y, active, fresh=False)
        for _ in range(3):
            run()
        bench.sync()
        with profile(activities=activities) as prof:
            for _ in range(steps):
                run()
            bench.sync()
        per_step[name] = {
            e.key: (e.self_cpu_time_total / steps / 1e3, _device_time(e) / steps / 1e3)
            for e in prof.key_averages()
        }
    sup, st = per_step["supernet"], per_step["static"]
    zero = (0.0, 0.0)
    totals = {k: tuple(sum(v[i] for v in d.values()) for i in (0, 1)) for k, d in per_step.items()}
    print(
        f"\n[6] where the time goes: {steps} steps of the smallest subnet under torch.profiler, "
        "self time per step (ms), largest differences first"
    )
    device = " | GPU: supernet  static" if bench.cuda else ""
    print(f"{'operator':<44} CPU: supernet  static   diff{device}")
    keys = sorted(set(sup) | set(st), key=lambda k: -abs(sup.get(k, zero)[0] - st.get(k, zero)[0]))
    for key in [*keys[:14], "total"]:
        a, b = (totals["supernet"], totals["static"]) if key == "total" else (
            sup.get(key, zero), st.get(key, zero)
        )  # fmt: skip
        gpu = f" | {a[1]:>13.3f} {b[1]:>7.3f}" if bench.cuda else ""
        print(f"{key[:44]:<44} {a[0]:>13.3f} {b[0]:>7.3f} {a[0] - b[0]:>+6.3f}{gpu}")
    print("(profiler overhead inflates small operators; the timings of part 1 are the figures)")
    return per_step


def _device_time(event: object) -> float:
    """Self GPU time in microseconds (the attribute's name changed across torch versions)."""
    for name in ("self_device_time_total", "self_cuda_time_total"):
        value = getattr(event, name, None)
        if value is not None:
            return float(value)
    return 0.0


def transformer(bench: Bench, repeats: int) -> None:
    """Part 4: Transformer supernet train step against its exported SubTransformer, tokens/s."""
    torch.manual_seed(0)
    scale = bench.profile["scale"]
    spec = dict(SCALES[scale])
    vocab, (bsz, length) = spec.pop("vocab"), spec.pop("batch")
    net = TransformerSupernet(vocab, vocab, **spec, share_all_embeddings=True, dropout=0.1)
    net.to(bench.device)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(4, vocab, (bsz, length + 1), generator=g)
    src, target = tokens[:, :-1].clone(), tokens[:, 1:].clone()
    src[:, -1] = target[:, -1] = net.eos_index
    prev = torch.cat([torch.zeros(bsz, 1, dtype=torch.long), target[:, :-1]], dim=1)
    batch = tuple(t.to(bench.device) for t in (src, prev, target))
    print(
        f"\n[4] Transformer ({scale} widths) train step, {bsz}x{length} target tokens: "
        "tokens/s supernet vs exported SubTransformer"
    )
    for name, arch in (
        ("largest", net.space.largest()),
        ("random", net.space.sample(np.random.default_rng(0))),
    ):
        with bench.autocast():
            o = train_step_overhead(net, batch, repeats, arch=arch, sync=bench.sync)
        n = bsz * length
        print(
            f"{name:<10} supernet {n / o['supernet']:>9.0f} tok/s, static {n / o['static']:>9.0f}"
            f" tok/s, step ratio {o['ratio']:.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default, help=f"cuda or cpu (default {default})")
    parser.add_argument("--random", type=int, default=5, help="random subnets in part 1")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--sandwich-steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    parser.add_argument("--resolution", type=int, help="override the profile's input size")
    parser.add_argument("--batch", type=int, help="override the profile's large batch")
    parser.add_argument("--skip", default="", help="parts to skip, e.g. 3,4,5")
    parser.add_argument("--profile-steps", type=int, default=20, help="steps profiled in part 6")
    parser.add_argument(
        "--malloc",
        choices=("keep", "default"),
        default="keep",
        help="CPU: keep freed memory mapped (default; see the docstring) or leave glibc as is",
    )
    add_arguments(parser)
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda needs a CUDA GPU; none is visible (use --device cpu)")
    torch.set_num_threads(args.threads)
    bench = Bench(args.device, args.threads)
    if args.resolution:
        bench.profile["resolution"] = args.resolution
    if args.batch:
        bench.profile["batch"] = args.batch
        if bench.cuda:
            bench.profile["step_batch"] = args.batch
    if bench.cuda:
        torch.backends.cudnn.benchmark = True
    else:
        torch.set_flush_denormal(True)
    allocator = "malloc=default"
    if not bench.cuda and args.malloc == "keep":
        allocator = keep_freed_memory()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    name = torch.cuda.get_device_name(bench.device) if bench.cuda else "cpu"
    print(
        f"device={name} torch={torch.__version__} threads={args.threads} "
        f"profile={bench.profile} repeats={args.repeats} {allocator} "
        f"load_avg_1min={os.getloadavg()[0]:.1f}"
    )
    net = mobilenet(bench)
    rng = np.random.default_rng(0)
    archs = {"largest": net.space.largest(), "smallest": net.space.smallest()}
    archs.update({f"random{i + 1}": net.space.sample(rng) for i in range(args.random)})
    ratios = subnet_steps(bench, net, archs, args.repeats)
    randoms = [v for k, v in ratios.items() if k.startswith("random")]
    new_each = new_random_steps(bench, net, rng, args.repeats) if args.random else None
    if "2" not in skip:
        overhead(bench, net, archs.get("random1", archs["smallest"]), args.repeats)
    if "3" not in skip:
        sandwich(bench, net, args.sandwich_steps)
    if "4" not in skip:
        transformer(bench, args.repeats)
    if "5" not in skip:
        latency_modes(bench.device, net, args)
    if "6" not in skip:
        where_time_goes(bench, net, archs["smallest"], args.profile_steps)
    print(f"\nload_avg_1min after: {os.getloadavg()[0]:.1f}")
    print(
        f"largest ratio {ratios['largest']:.3f} (GPU target <= 1.05), smallest "
        f"{ratios['smallest']:.3f} (target <= 1.15)"
    )
    if new_each is not None:
        print(f"a new random subnet every step (as in training): {new_each:.3f}")
    if randoms:
        print(
            f"random-subnet step ratio (supernet / static, mean of {len(randoms)}): "
            f"{statistics.mean(randoms):.3f} (target <= 1.15)"
        )


if __name__ == "__main__":
    main()
