"""DDP overhead on the CPU: training steps per second of 2 processes (gloo) vs 1 process.

    python bench/bench_ddp_overhead.py [--steps 40] [--warmup 5] [--batch 64] [overrides ...]

Both runs are `python train.py` as a user starts them (MobileNetV3 on digits, the sandwich
recipe: 4 subnets per step), with the same per-process batch and `--threads` torch threads per
process, one after the other; validation and checkpoints are off so only training steps count.
A callback times the steps after `--warmup` untimed ones on every rank. Reported: steps/s of
each run, their ratio (DDP / 1 process: 1.0 means no overhead, since every DDP rank does the
same work per step as the single process), and images/s (DDP trains the global batch of
2 × batch per step). On a 2-core machine each process gets one core; the load average is
printed before and after, as a busy machine inflates the overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L

ROOT = Path(__file__).resolve().parents[1]


class StepTimer(L.Callback):
    """Writes the wall-clock time at the end of every training step, per rank."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.times: list[float] = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.times.append(time.perf_counter())

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.times))


def run(name: str, out: Path, args: argparse.Namespace, *overrides: str) -> float:
    """Train `--steps` steps; the steps/s of the slowest rank after the warm-up steps."""
    timer = out / name
    cmd = [
        sys.executable, "train.py", "logger=none", f"threads={args.threads}",
        f"data.batch_size={args.batch}", f"+trainer.max_steps={args.steps}",
        "trainer.max_epochs=1000", "trainer.limit_val_batches=0",
        "trainer.enable_progress_bar=false", "+trainer.enable_checkpointing=false",
        "callbacks.progress_bar=null", "callbacks.model_checkpoint=null",
        "callbacks.last_checkpoint=null",
        "+callbacks.timer._target_=bench.bench_ddp_overhead.StepTimer",
        f"+callbacks.timer.path={timer}", f"hydra.run.dir={timer / 'run'}",
        *overrides, *args.overrides,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "WANDB_MODE": "disabled",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    print(f"{name}: python {' '.join(cmd[1:])}", flush=True)
    timer.mkdir(parents=True, exist_ok=True)
    with (timer / "log.txt").open("w") as log:
        code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if code.returncode != 0:
        tail = "\n".join((timer / "log.txt").read_text().splitlines()[-20:])
        sys.exit(f"{name} run failed (exit {code.returncode}):\n{tail}")
    rates = []
    for path in sorted(timer.glob("rank*.json")):
        times = json.loads(path.read_text())
        timed = times[args.warmup - 1 :]
        rates.append((len(timed) - 1) / (timed[-1] - timed[0]))
    return min(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="training steps per run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed first steps")
    parser.add_argument("--batch", type=int, default=64, help="per-process batch")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--out", default=None, help="work directory (default: a temp dir)")
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides for both runs")
    args = parser.parse_args()
    if not 1 <= args.warmup < args.steps - 1:
        parser.error("need 1 <= --warmup < --steps - 1")
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_ddp_"))
    load_before = os.getloadavg()
    single = run("single", out, args, "trainer=cpu")
    ddp = run("ddp", out, args, "trainer=ddp_cpu", "trainer.devices=2")
    timed = args.steps - args.warmup
    print(f"machine: {os.cpu_count()} CPUs; load average before {load_before[0]:.2f}, "
          f"after {os.getloadavg()[0]:.2f}")
    print(f"per-process batch {args.batch}, {args.threads} thread(s) per process, "
          f"{timed} timed steps after {args.warmup} warm-up steps")
    print(f"{'run':<28} {'steps/s':>8} {'images/s':>9}")
    print(f"{'1 process':<28} {single:>8.2f} {single * args.batch:>9.1f}")
    print(f"{'DDP, 2 processes (gloo)':<28} {ddp:>8.2f} {ddp * 2 * args.batch:>9.1f}")
    print(f"steps/s ratio, DDP 2 processes / 1 process: {ddp / single:.2f} "
          f"(1.00 = no DDP overhead); images/s speed-up: {2 * ddp / single:.2f}x")


if __name__ == "__main__":
    main()
