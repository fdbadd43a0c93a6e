"""Tables with one row per architecture, generated for the `space=table` tests."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

WIDTHS = (8, 16, 32)
OPS = ("skip", "conv3", "conv5")  # string options, listed small → large by first appearance
_GAIN = {"skip": 0.0, "conv3": 1.5, "conv5": 2.5}
_OP_FLOPS = {"skip": 0.0, "conv3": 9.0, "conv5": 25.0}


def layer_table(
    layers: int = 4,
    options: Sequence[Any] = WIDTHS,
    interaction: float = 0.0,
    noise: float = 0.0,
    seed: int = 0,
    shuffle: bool = True,
) -> pd.DataFrame:
    """Every combination of `options` in `layers` columns `l1..`, with:

    - `acc`: additive per-layer gains (plus `interaction` × neighbouring layers' product and
      Gaussian `noise`), `test_acc` = acc − 1 with a small per-row wobble;
    - `flops`: additive (a sum of per-layer terms);
    - `lat`: not additive: the widest layer dominates (max) plus a small per-layer term;
    - `params`: additive.
    Rows are shuffled so that option order is not row order.
    """
    rng = np.random.default_rng(seed)
    numeric = not isinstance(options[0], str)
    weights = np.linspace(1.0, 0.4, layers)
    rows = []
    for combo in itertools.product(options, repeat=layers):
        size = np.array([c if numeric else _OP_FLOPS[c] + 1 for c in combo], dtype=float)
        pos = np.array([list(options).index(c) for c in combo], dtype=float)
        gain = pos if numeric else np.array([_GAIN[c] for c in combo])
        acc = 50 + float(weights @ gain)
        acc += interaction * float((pos[:-1] * pos[1:]).sum())
        acc += float(rng.normal(0, noise)) if noise else 0.0
        flops = float((size**2).sum())
        rows.append(
            {
                **{f"l{i + 1}": c for i, c in enumerate(combo)},
                "acc": acc,
                "test_acc": acc - 1 + 0.01 * float(rng.random()),
                "flops": flops,
                "lat": float(size.max() * 2 + 0.1 * size.sum()),
                "params": flops / 10,
            }
        )
    frame = pd.DataFrame(rows)
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True) if shuffle else frame


def drop_rows(frame: pd.DataFrame, fraction: float, seed: int = 0) -> pd.DataFrame:
    """An incomplete numeric table: `fraction` of the rows removed, never the row with every
    decision at its largest option."""
    decisions = [c for c in frame.columns if c.startswith("l")]
    largest = (frame[decisions] == frame[decisions].max()).all(axis=1)
    candidates = frame.index[~largest]
    rng = np.random.default_rng(seed)
    gone = rng.choice(candidates, size=int(fraction * len(frame)), replace=False)
    return frame.drop(index=gone).reset_index(drop=True)


def decisions(layers: int = 4) -> list[str]:
    return [f"l{i + 1}" for i in range(layers)]
