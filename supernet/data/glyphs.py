"""Distorted glyphs: the offline default image dataset, hard enough for subnets to differ.

Digits, capitals and the lower-case letters that differ from their capital (47 classes, as in
EMNIST Balanced), rendered from the fonts matplotlib ships and distorted (see
`supernet.data.glyph_render`). Nothing is downloaded. The images follow from the settings
alone: `seed` is fixed in the config, so the data stays the same when the training seed
changes. They are generated once (seconds) and cached under `root`, in a file named by a
digest of every setting that shapes them, so a changed setting builds a new file and never
reads a stale one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from supernet.data.glyph_render import (
    DEFAULT_CLASSES,
    DEFAULT_FONTS,
    TEMPLATE_SCALE,
    Distortion,
    render_split,
    render_templates,
)
from supernet.data.images import ImageDataModule, TransformedSubset
from supernet.errors import DatasetError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
FORMAT = 1  # bump when the generator changes what a setting produces


@functools.lru_cache(maxsize=2)
def _templates(fonts: tuple[str, ...], classes: str, strokes: tuple[int, ...], canvas: int,
               glyph_height: float) -> torch.Tensor:
    """The clean glyphs, drawn once per process (seconds) and shared by every split and every
    datamodule with the same fonts, classes and strokes; callers index it, never write it."""
    return render_templates(fonts, classes, strokes, canvas, glyph_height)


class GlyphsDataModule(ImageDataModule):
    """Rendered glyphs as 1-channel images, fixed train / validation / test splits.

    Args:
        root: cache directory (None: generate in memory on every setup).
        image_size: side of the images (the largest resolution of the space).
        num_classes: must equal the number of characters in `classes`.
        classes: one character per class.
        fonts: font files or names of matplotlib's bundled fonts (None: its 21 text fonts).
        strokes: extra stroke widths, in pixels at four times `image_size`.
        train_size, val_size, test_size: images per split. Each split is its own random
            stream and a smaller split is a prefix of a larger one, so tests can take a few
            hundred images of the same data.
        distortion: overrides of the `Distortion` defaults (rotation, elastic, noise, ...).
        **kwargs: resolutions, batch size, workers, calibration subset, per-epoch validation
            size and seed (see `ImageDataModule`); `seed` also fixes the images.
    """

    def __init__(
        self,
        root: str | None = None,
        image_size: int = 24,
        num_classes: int = len(DEFAULT_CLASSES),
        channels: int = 1,
        resolutions: Sequence[int] = (12, 16, 20, 24),
        classes: str = DEFAULT_CLASSES,
        fonts: Sequence[str] | None = None,
        strokes: Sequence[int] = (0, 1, 2, 3),
        train_size: int = 10000,
        val_size: int = 10000,
        test_size: int = 2000,
        distortion: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, channels, resolutions, **kwargs)
        if len(set(classes)) != len(classes):
            raise DatasetError(f"data.classes={classes!r} repeats a character")
        self._check_classes(len(classes))
        sizes = {"train": train_size, "val": val_size, "test": test_size}
        if min(sizes.values()) < 1:
            raise DatasetError(f"every split needs at least one image, got {sizes}")
        try:
            self.distortion = Distortion(**dict(distortion or {}))
        except TypeError as err:
            known = ", ".join(Distortion.__dataclass_fields__)
            raise DatasetError(f"unknown data.distortion key ({err}); known: {known}") from None
        self.root = None if root is None else Path(root)
        self.image_size = image_size
        self.classes = classes
        self.fonts = tuple(fonts) if fonts is not None else DEFAULT_FONTS
        self.strokes = tuple(int(s) for s in strokes)
        self.sizes = sizes

    # --- generation and cache -------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """Everything that shapes the images (the cache key)."""
        return {
            "format": FORMAT,
            "image_size": self.image_size,
            "classes": self.classes,
            "fonts": list(self.fonts),
            "strokes": list(self.strokes),
            "sizes": self.sizes,
            "distortion": asdict(self.distortion),
            "seed": self.seed,
        }

    def cache_file(self) -> Path | None:
        if self.root is None:
            return None
        text = json.dumps(self.settings(), sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        return self.root / "glyphs" / f"glyphs-{digest}.npz"

    def generate(self) -> dict[str, np.ndarray]:
        """Render every split: `{split}_images` (uint8) and `{split}_labels` arrays."""
        templates = _templates(
            tuple(self.fonts), self.classes, self.strokes, TEMPLATE_SCALE * self.image_size,
            self.distortion.glyph_height,
        )
        arrays: dict[str, np.ndarray] = {}
        for index, split in enumerate(SPLITS):
            images, labels = render_split(
                templates, self.sizes[split], self.image_size, self.distortion, self.seed, index
            )
            arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
        return arrays

    def _arrays(self) -> dict[str, np.ndarray]:
        path = self.cache_file()
        if path is not None and path.is_file():
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        arrays = self.generate()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            payload = {"settings": np.array(json.dumps(self.settings())), **arrays}
            np.savez(tmp, **payload)  # type: ignore[arg-type]
            os.replace(tmp, path)  # atomic: a concurrent run reads a whole file or none
            log.info("wrote the glyph images to %s", path)
        return arrays

    def prepare_data(self) -> None:
        """Generate and cache the images once (a few seconds)."""
        if self.root is not None:
            self._arrays()

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        arrays = self._arrays()
        train = torch.from_numpy(arrays["train_images"]).float() / 255.0
        mean, std = float(train.mean()), float(train.std()) or 1.0
        sets = {}
        for split in SPLITS:
            images = torch.from_numpy(arrays[f"{split}_images"]).float().unsqueeze(1) / 255.0
            labels = torch.from_numpy(arrays[f"{split}_labels"].astype(np.int64))
            data = TensorDataset((images - mean) / std, labels)
            sets[split] = TransformedSubset(data, range(len(labels)))
        self.train_set, self.val_set, self.test_set = sets["train"], sets["val"], sets["test"]
        self.calib_base = sets["train"]
