"""Tiny ImageFolder trees written by tests: a few classes of small coloured PNG images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_image_folder(
    root: Path,
    classes: tuple[str, ...] = ("cat", "dog", "fox"),
    per_class: int = 8,
    size: int = 20,
    val_per_class: int = 0,
    seed: int = 0,
) -> Path:
    """`root/train/<class>/*.png` (and `root/val/...` when `val_per_class`); returns root.

    Each class has its own dominant colour channel, so a network can tell them apart."""
    rng = np.random.default_rng(seed)
    splits = {"train": per_class, "val": val_per_class}
    for split, count in splits.items():
        for c, name in enumerate(classes):
            folder = root / split / name
            if count:
                folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = rng.integers(0, 80, size=(size, size, 3))
                pixels[..., c % 3] += 150
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")
    return root
