"""scikit-learn's bundled handwritten digits: the offline default dataset.

1,797 real 8×8 grey images, upsampled once to `image_size`; fixed validation and test splits.
It needs no download, so a fresh clone trains and searches with no network.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset
from torchvision.transforms import v2

from supernet.data.augment import random_affine
from supernet.data.images import ImageDataModule, TransformedSubset, split_indices

MEAN, STD = 0.3, 0.4  # of the pixel values scaled to [0, 1]
DEGREES, TRANSLATE, SCALE = 10.0, (0.1, 0.1), (0.9, 1.1)  # training augmentation


class DigitsDataModule(ImageDataModule):
    """Digits as 1-channel images.

    Args:
        image_size: side of the upsampled images (the largest resolution of the space).
        val_size: images held out for validation (search scores subnets on these).
        test_size: images held out for the final test, never seen by a search.
        augment: random shifts, scales and small rotations of training images.
        batch_augment: augment whole batches on their device after the transfer instead of
            image by image in the loader; None: when the trainer runs on a GPU (where the
            per-image CPU work would be the bottleneck).
        **kwargs: batch size, workers, calibration subset and seed (see `ImageDataModule`).
    """

    def __init__(
        self,
        image_size: int = 24,
        num_classes: int = 10,
        channels: int = 1,
        resolutions: tuple[int, ...] = (16, 20, 24),
        val_size: int = 360,
        test_size: int = 360,
        augment: bool = True,
        batch_augment: bool | None = None,
        **kwargs,
    ) -> None:
        super().__init__(num_classes, channels, resolutions, **kwargs)
        self.image_size = image_size
        self.val_size = val_size
        self.test_size = test_size
        self.augment = augment
        self.batch_augment = batch_augment
        self._plain_train: TransformedSubset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        digits = load_digits()
        self._check_classes(len(digits.target_names))
        images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        images = F.interpolate(images, size=self.image_size, mode="bilinear", align_corners=False)
        images = (images - MEAN) / STD
        base = TensorDataset(images, torch.tensor(digits.target))
        rest, test = split_indices(len(base), self.test_size, self.seed)
        train_pos, val_pos = split_indices(len(rest), self.val_size, self.seed + 7)
        train, val = rest[train_pos], rest[val_pos]
        shift = v2.RandomAffine(degrees=DEGREES, translate=TRANSLATE, scale=SCALE)
        self.train_set = TransformedSubset(base, train, shift if self.augment else None)
        self._plain_train = TransformedSubset(base, train)
        self.val_set = TransformedSubset(base, val)
        self.test_set = TransformedSubset(base, test)
        self.calib_base = TransformedSubset(base, train)

    def augments_batches(self) -> bool:
        """True when training batches are augmented on their device (`batch_augment`)."""
        if not self.augment:
            return False
        return self.on_gpu() if self.batch_augment is None else self.batch_augment

    def train_dataloader(self) -> DataLoader:
        if not self.augments_batches():
            return super().train_dataloader()
        self._ready()
        return self._loader(self._plain_train, True, self.batch_size)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        trainer = getattr(self, "trainer", None)
        if trainer is None or not trainer.training or not self.augments_batches():
            return batch
        images, labels = batch
        return random_affine(images, DEGREES, TRANSLATE, SCALE), labels
