"""Latency lookup table vs measured end-to-end latency on random subnets.

`--space mobilenetv3` (default): the digits-like supernet (10 classes, 1 channel, resolutions
16/20/24, stem stride 1, first unit stride 2, width 1.0), channels-last. `--space transformer`:
the CPU twin of HAT's space (vocabulary 110, as the number corpus), HAT's latency workload
(one 30-token sentence, 30 decoder steps, beam 5), parts = encoder layers, decoder layers and
the rest. On this machine's CPU, batch 1, one thread. The table
is built (parts timed in their networks, plus the per-network offset) in the same interleaved
session as the whole subnets it is checked against, then `--again` re-times the subnets in a
later session against the same table. Prints the median absolute percentage error (target
≤ 10 %), Spearman, and the conditions (load average, clock, duration).

    python bench/bench_latency_table.py [--space transformer] [--n 100] [--repeats 50]
        [--passes 50] [--wall] [--again] [--table lut.yaml] [--store store.sqlite]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_transformer_speed import SCALES  # noqa: E402
from search.hardware import LatencyMeter  # noqa: E402
from search.hardware.lookup_table import LatencyTableCost  # noqa: E402
from search.hardware.table_validation import TableValidation, validate_table  # noqa: E402
from search.store import Store  # noqa: E402
from supernet.mobilenetv3 import MobileNetV3Supernet  # noqa: E402
from supernet.transformer.model import TransformerSupernet  # noqa: E402


def _print(title: str, result: TableValidation) -> None:
    s = result.summary()
    print(f"\n{title}")
    print(
        f"  median |error| {s['median_ape_pct']:.1f} %  (mean {s['mean_ape_pct']:.1f} %, "
        f"p90 {s['p90_ape_pct']:.1f} %, median signed {s['median_error_pct']:+.1f} %), "
        f"Spearman {s['spearman']:.3f}, n = {s['n']}"
    )
    print(
        f"  without the offset ({s['offset_ms']:+.3f} ms): median |error| "
        f"{s['median_ape_without_offset_pct']:.1f} %; measured median "
        f"{s['measured_median_ms']:.2f} ms"
    )
    print("  conditions:", json.dumps(result.conditions))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", choices=("mobilenetv3", "transformer"), default="mobilenetv3")
    parser.add_argument("--n", type=int, default=100, help="random subnets to validate on")
    parser.add_argument("--seed", type=int, default=1, help="of the validated subnets")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--passes", type=int, default=None, help="default: --repeats")
    parser.add_argument("--wall", action="store_true", help="wall clock instead of CPU time")
    parser.add_argument("--no-offset", action="store_true", help="sum of parts only")
    parser.add_argument("--again", action="store_true", help="validate again in a new session")
    parser.add_argument("--table", default=None, help="YAML/JSON file of the table")
    parser.add_argument("--store", default=None, help="a measurement store to reuse the table")
    args = parser.parse_args()

    torch.set_num_threads(1)
    supernet: Any
    if args.space == "transformer":
        spec = dict(SCALES["cpu"])
        vocab = spec.pop("vocab")
        spec.pop("batch")
        torch.manual_seed(0)
        supernet = TransformerSupernet(vocab, vocab, **spec, share_all_embeddings=True).eval()
    else:
        supernet = MobileNetV3Supernet(
            num_classes=10,
            in_channels=1,
            resolutions=(16, 20, 24),
            stem_stride=1,
            first_unit_stride=2,
        ).eval()
    meter = LatencyMeter(
        device="cpu",
        batch_size=1,
        warmup=args.warmup,
        repeats=args.repeats,
        trim=0.1,
        threads=1,
        clock="wall" if args.wall else "process",
    )
    cost = LatencyTableCost(
        meter, path=args.table, offset=not args.no_offset, passes=args.passes, prebuild=False
    )
    cost.bind(supernet, store=Store(args.store) if args.store else None)
    known = len(cost.table or ())
    print(f"table entries known before: {known}")
    _print("same session as the table", validate_table(cost, n=args.n, seed=args.seed))
    if args.again:
        _print("a later session", validate_table(cost, n=args.n, seed=args.seed))


if __name__ == "__main__":
    main()
