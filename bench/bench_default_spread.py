"""Is the default vision data hard enough to rank subnets? `python bench/bench_default_spread.py`.

Trains the default supernet (`python train.py`, as a user starts it) with two training seeds,
or takes two checkpoints (`--ckpt A B`), then validates the largest, the smallest and 30
random subnets (a fixed draw) on the whole validation split of each checkpoint, exactly as a
search does (BatchNorm recalibrated on the fixed calibration subset). Prints:

- wall-clock of each training run (when it trains) and the largest / smallest accuracy;
- Kendall τ of the 30 random subnets' accuracies between the two halves of the validation
  split (does the split measure a stable ranking?), per checkpoint;
- Kendall τ between the two training seeds on the whole split (does the ranking survive
  retraining?).

Targets on the 2-core CPU: training ≤ 15 min, largest ≥ 85 %, largest − smallest ≥ 5 points,
≥ 10,000 validation images, τ(halves) ≥ 0.7, τ(seeds) ≥ 0.5.

    python bench/bench_default_spread.py [--ckpt A.ckpt B.ckpt] [--out DIR] [--seeds 0 1]
        [--subnets 30] [--threads 2] [-- extra train.py overrides]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from search.evaluation import load_datamodule  # noqa: E402
from supernet.calibration import recalibrate_bn, resize  # noqa: E402
from supernet.checkpoint import load_supernet  # noqa: E402
from supernet.space import Arch  # noqa: E402


def train(seed: int, out: Path, threads: int, overrides: list[str]) -> tuple[Path, float]:
    """`python train.py seed=<seed>` into out/seed<seed>; its last checkpoint and minutes."""
    run_dir = out / f"seed{seed}"
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    if ckpt.exists():
        print(f"reusing {ckpt}", flush=True)
        return ckpt, float("nan")
    cmd = [sys.executable, "train.py", "logger=csv", f"seed={seed}", f"threads={threads}",
           f"hydra.run.dir={run_dir}", *overrides]
    print("$", " ".join(cmd[1:]), f"(load average {os.getloadavg()[0]:.1f})", flush=True)
    start = time.perf_counter()
    with (out / f"seed{seed}.log").open("w") as log:
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=log, stderr=subprocess.STDOUT)
    minutes = (time.perf_counter() - start) / 60
    print(f"  {minutes:.1f} min (load average after: {os.getloadavg()[0]:.1f})", flush=True)
    return ckpt, minutes


def last_validation(ckpt: Path) -> dict[str, float]:
    """The final val/acc_* that training logged (its per-epoch validation subset)."""
    files = sorted(ckpt.parents[1].glob("csv/version_*/metrics.csv"))
    if not files:
        return {}
    rows = [r for r in csv.DictReader(files[-1].open()) if r.get("val/acc_max")]
    return {k: float(v) for k, v in rows[-1].items() if k.startswith("val/") and v} if rows else {}


@torch.no_grad()
def correct_per_image(ckpt: Path, archs: list[Arch]) -> np.ndarray:
    """[arch, image] booleans on the whole validation split (as a search scores)."""
    supernet, record = load_supernet(ckpt)
    datamodule = load_datamodule(record["data_config"])
    calibration = list(datamodule.calibration_loader())
    validation = list(datamodule.full_val_dataloader())
    out = []
    for arch in archs:
        net = supernet.export_subnet(arch).to(memory_format=torch.channels_last)
        resolution = arch.get("resolution")
        recalibrate_bn(net, calibration, resolution)
        net.eval()
        hits = [
            (net(resize(x, resolution).contiguous(memory_format=torch.channels_last)).argmax(1)
             == y).numpy()
            for x, y in validation
        ]
        out.append(np.concatenate(hits))
    return np.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", nargs=2, type=Path, default=None, help="skip training")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seeds", type=int, nargs=2, default=[0, 1])
    parser.add_argument("--subnets", type=int, default=30)
    parser.add_argument("--draw-seed", type=int, default=0, help="seed of the random subnets")
    parser.add_argument("--threads", type=int, default=2, help="as train.py by default")
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides")
    args = parser.parse_args()
    os.chdir(ROOT)  # checkpoints name the data cache relative to the repository root
    torch.set_num_threads(args.threads)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_spread_"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"cpu cores: {os.cpu_count()}, threads: {args.threads}, torch {torch.__version__}")
    if args.ckpt:
        ckpts, minutes = list(args.ckpt), [float("nan")] * 2
    else:
        trained = [train(s, out, args.threads, args.overrides) for s in args.seeds]
        ckpts, minutes = [c for c, _ in trained], [m for _, m in trained]

    space = load_supernet(ckpts[0])[0].space
    rng = np.random.default_rng(args.draw_seed)
    randoms: dict[str, Arch] = {}
    while len(randoms) < args.subnets:
        arch = space.sample(rng)
        randoms.setdefault(arch.arch_id, arch)
    archs = [space.largest(), space.smallest(), *randoms.values()]

    accuracy: list[np.ndarray] = []
    for ckpt, mins in zip(ckpts, minutes, strict=True):
        start = time.perf_counter()
        hits = correct_per_image(ckpt, archs)
        n = hits.shape[1]
        acc = 100 * hits.mean(1)
        half = n // 2
        first, second = 100 * hits[2:, :half].mean(1), 100 * hits[2:, half:].mean(1)
        tau_halves = kendalltau(first, second).statistic
        accuracy.append(acc)
        print(f"\ncheckpoint {ckpt}")
        if mins == mins:
            print(f"  training wall-clock: {mins:.1f} min")
        logged = last_validation(ckpt)
        if logged:
            print("  training's last validation (per-epoch subset): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in logged.items()))
        print(f"  whole validation split: {n} images; largest {acc[0]:.2f} %, smallest "
              f"{acc[1]:.2f} % (spread {acc[0] - acc[1]:.2f} points); {args.subnets} random "
              f"subnets {acc[2:].min():.2f}–{acc[2:].max():.2f} % (mean {acc[2:].mean():.2f})")
        print(f"  Kendall τ of the {args.subnets} random subnets, first vs second half of the "
              f"split ({half} + {n - half} images): {tau_halves:.3f}")
        print(f"  ({time.perf_counter() - start:.0f} s to validate {len(archs)} subnets)")
    tau_seeds = kendalltau(accuracy[0][2:], accuracy[1][2:]).statistic
    print(f"\nKendall τ of the {args.subnets} random subnets between the two checkpoints "
          f"(training seeds {args.seeds[0]} and {args.seeds[1]}): {tau_seeds:.3f}")


if __name__ == "__main__":
    main()
