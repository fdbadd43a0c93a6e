"""A small raw parallel corpus (English → French numbers) in the `data=parallel_text` layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from supernet.data.translation.numbers import number_pairs


def number_corpus(root: Path, first: int = 1, n: int = 80) -> Path:
    """`root/{train,valid,test}.{en,fr}`: numbers first..first+n, the last 20 held out."""
    en, fr = number_pairs(np.arange(first, first + n))
    cut = {"train": slice(0, n - 20), "valid": slice(n - 20, n - 10), "test": slice(n - 10, n)}
    root.mkdir(parents=True)
    for split, rows in cut.items():
        (root / f"{split}.en").write_text("\n".join(en[rows]) + "\n")
        (root / f"{split}.fr").write_text("\n".join(fr[rows]) + "\n")
    return root
