"""How well `hardware=device` predicts a device's latency from the subnets timed there.

This machine's CPU stands in for the device: two kits of one checkpoint are written with
`python -m search.device_kit` (one to fit on, `--fit` subnets, seed 0; one held out, `--held-out`
subnets, seed 1) and timed by the kits' own `measure_onnxruntime.py`, exactly as on a device.
The held-out kit is timed twice, so measurement noise has a figure of its own. Printed side by
side, Kendall tau against the held-out kit's first timing and the mean absolute percentage
error:

- the predictor (`DeviceLatencyCost`, fitted on the first kit) at its default
  `features=costs`: its cross-validated figures (what a search logs) and its figures on the
  held-out kit; and with `features=onehot`, on the held-out kit;
- MACs alone (tau only: MACs are not milliseconds), the proxy a search without a device uses;
- the held-out kit's second timing: the ceiling that timing noise leaves.

    python bench/bench_device_latency.py --ckpt outputs/train/runs/<time>/checkpoints/last.ckpt
        [--fit 60] [--held-out 40] [--repeats 50] [--warmup 10] [--threads 1]
    python bench/bench_device_latency.py --pretrained hat_iwslt14deen --pretrained-path FILE
        --repeats 5 --warmup 2   (a translation space: each timing is a whole beam search)
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
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.device_kit import main as write_kit_cli  # noqa: E402
from search.device_kit import published_architecture  # noqa: E402
from search.hardware import AnalyticCost, DeviceLatencyCost  # noqa: E402
from search.hardware.device import read_latencies  # noqa: E402
from search.hardware.kit import COLUMN, RUNNER, TABLE  # noqa: E402
from supernet.checkpoint import load_supernet  # noqa: E402


def _time(kit: Path, repeats: int, threads: int, warmup: int) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, str(kit / RUNNER), "--repeats", str(repeats), "--threads", str(threads),
         "--warmup", str(warmup)],
        check=True, stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def _clear(table: Path) -> None:
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row[COLUMN] = ""
    with table.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _row(name: str, truth: np.ndarray, guess: np.ndarray, mape: bool = True) -> None:
    tau = stats.kendalltau(truth, guess).statistic
    err = f"{np.mean(np.abs(guess - truth) / truth) * 100:8.1f}" if mape else f"{'-':>8}"
    print(f"{name:<52} {tau:8.3f} {err}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", help="a supernet checkpoint")
    source.add_argument("--pretrained", help="a published supernet's space (search.device_kit)")
    parser.add_argument("--pretrained-path", help="the published file (translation spaces)")
    parser.add_argument("--fit", type=int, default=60, help="subnets the predictor is fitted on")
    parser.add_argument("--held-out", type=int, default=40, help="subnets it is tested on")
    parser.add_argument("--repeats", type=int, default=50, help="timed runs per subnet")
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs per subnet")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    args = parser.parse_args()
    if args.ckpt:
        supernet, _ = load_supernet(args.ckpt)
        source = ["--ckpt", args.ckpt]
    else:
        supernet = published_architecture(args.pretrained, args.pretrained_path)
        source = ["--pretrained", args.pretrained]
        if args.pretrained_path:
            source += ["--pretrained-path", args.pretrained_path]
    timing = (args.repeats, args.threads, args.warmup)
    with tempfile.TemporaryDirectory(prefix="device_bench_") as tmp:
        fit, held = Path(tmp) / "fit", Path(tmp) / "held_out"
        for out, count, seed in ((fit, args.fit, 0), (held, args.held_out, 1)):
            argv = [*source, "--out", str(out), "--count", str(count)]
            if write_kit_cli([*argv, "--seed", str(seed)]) != 0:
                raise SystemExit(2)
        print(f"load average {os.getloadavg()[0]:.1f}; timing with {args.repeats} repeats, "
              f"{args.threads} thread(s)")
        seconds = _time(fit, *timing) + _time(held, *timing)
        archs, first, _ = read_latencies(held / TABLE, supernet.space)
        _clear(held / TABLE)
        _time(held, *timing)
        again_archs, again, _ = read_latencies(held / TABLE, supernet.space)
        assert [a.arch_id for a in again_archs] == [a.arch_id for a in archs]
        unseen = [i for i, a in enumerate(archs) if a.arch_id not in
                  {b.arch_id for b in read_latencies(fit / TABLE, supernet.space)[0]}]
        archs, first, again = [archs[i] for i in unseen], first[unseen], again[unseen]
        cost = DeviceLatencyCost(str(fit / TABLE), device="this CPU").bind(supernet)
        predicted = np.array([cost.predict(a) for a in archs])
        onehot = DeviceLatencyCost(str(fit / TABLE), features="onehot").bind(supernet)
        with_onehot = np.array([onehot.predict(a) for a in archs])
        macs = np.array([AnalyticCost().bind(supernet)(a)["macs"] for a in archs])
        print(f"\n{len(cost.measured)} subnets fitted on, {len(archs)} held out "
              f"(timing both kits: {seconds:.0f} s); latency "
              f"{first.min():.3f}-{first.max():.3f} ms; predictor: {cost.family}\n")
        print(f"{'against the held-out timing':<52} {'tau':>8} {'MAPE %':>8}")
        print(f"{'predictor, cross-validated on the fitted kit':<52} "
              f"{cost.quality['kendall_tau']:8.3f} {cost.quality['mape']:8.1f}")
        _row("predictor, held-out kit", first, predicted)
        _row(f"predictor, features=onehot ({onehot.family}), held-out kit", first, with_onehot)
        _row("MACs alone, held-out kit", first, macs, mape=False)
        _row("second timing of the held-out kit (noise ceiling)", first, again)


if __name__ == "__main__":
    main()
