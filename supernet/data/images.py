"""Shared machinery of the image datamodules: fixed splits, loaders, the calibration subset.

Every image datamodule yields batches at `image_size`; the training module resizes each batch
to the resolution of the subnet it trains, so one loader serves every elastic resolution.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from supernet.errors import DatasetError

Transform = Callable[[torch.Tensor], torch.Tensor]
GPU_WORKERS = 4  # loader processes by default when a GPU trains (capped by the cores)


class TransformedSubset(Dataset):
    """A subset of a dataset with its own transform (train and val views of one dataset)."""

    def __init__(
        self,
        base: Dataset,
        indices: Sequence[int] | np.ndarray,
        transform: Transform | None = None,
    ) -> None:
        self.base, self.indices, self.transform = base, [int(i) for i in indices], transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image, label = self.base[self.indices[i]]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(label)


def plain_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Keyword options as plain Python (config lists as lists), as library calls expect."""
    return {
        str(k): list(v) if isinstance(v, Sequence) and not isinstance(v, str) else v
        for k, v in (options or {}).items()
    }


def split_indices(n: int, holdout: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random split of `range(n)` into (rest, holdout), the same for a given seed."""
    if not 0 < holdout < n:
        raise DatasetError(f"cannot hold out {holdout} of {n} examples; lower the split size")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[holdout:]), np.sort(order[:holdout])


class ImageDataModule(L.LightningDataModule):
    """Train / validation / test splits plus a fixed calibration subset of training images.

    Subclasses set `train_set`, `val_set`, `test_set` and `calib_base` (training images with
    the evaluation transform) in `setup`.

    The geometry arguments tell a convolutional supernet how to view these images; supernet
    configs interpolate them (`${data.stem_stride}`), so the data config owns them.

    Args:
        num_classes: classes of the dataset (checked against the data in `setup`); None:
            whatever the data has (ImageFolder's class folders).
        channels: image channels.
        resolutions: the elastic input resolutions (largest = `image_size`).
        stem_stride: stride of the supernet's stem (1 for 32-pixel images, 2 for ImageNet).
        first_unit_stride: stride of the first elastic unit (likewise).
        batch_size: training and evaluation batch size.
        num_workers: loader worker processes; None: none when training on the CPU (its cores
            train the network), `GPU_WORKERS` when the trainer runs on a GPU.
        pin_memory: page-locked batches (faster, asynchronous copies to a GPU); None: when the
            trainer runs on a GPU.
        calib_images: training images used to re-estimate BatchNorm statistics of a subnet.
        calib_batch_size: batch size of the calibration passes.
        seed: seed of the splits and of the calibration subset.
        epoch_val_size: validation images scored after each training epoch, the first ones of
            the split (None: all). Scoring every validated subnet on a large split can cost
            more than the epoch's training; a search always scores the whole split.
    """

    image_size: int

    def __init__(
        self,
        num_classes: int | None,
        channels: int,
        resolutions: Sequence[int],
        stem_stride: int = 1,
        first_unit_stride: int = 1,
        batch_size: int = 64,
        num_workers: int | None = 0,
        calib_images: int = 500,
        calib_batch_size: int = 100,
        seed: int = 0,
        pin_memory: bool | None = None,
        epoch_val_size: int | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.channels = channels
        self.resolutions = list(resolutions)
        self.stem_stride = stem_stride
        self.first_unit_stride = first_unit_stride
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.calib_images = calib_images
        self.calib_batch_size = calib_batch_size
        self.seed = seed
        self.epoch_val_size = epoch_val_size
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None
        self.calib_base: Dataset | None = None

    def on_gpu(self) -> bool:
        """True when the attached trainer trains on a CUDA device."""
        trainer = getattr(self, "trainer", None)
        return trainer is not None and trainer.strategy.root_device.type == "cuda"

    def loader_settings(self) -> dict[str, Any]:
        """Workers and memory pinning of the loaders (see `num_workers`, `pin_memory`)."""
        gpu = self.on_gpu()
        workers = self.num_workers
        if workers is None:
            workers = min(GPU_WORKERS, os.cpu_count() or 1) if gpu else 0
        pin = gpu if self.pin_memory is None else self.pin_memory
        return {"num_workers": workers, "persistent_workers": workers > 0, "pin_memory": pin}

    def _loader(self, dataset: Dataset | None, shuffle: bool, batch_size: int) -> DataLoader:
        assert dataset is not None
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, **self.loader_settings())

    def _check_classes(self, found: int) -> None:
        if self.num_classes is None:
            self.num_classes = found
        elif found != self.num_classes:
            raise DatasetError(
                f"the data has {found} classes but data.num_classes={self.num_classes}; "
                f"set data.num_classes={found} (or null: the data's count)"
            )

    def _split_folders(
        self, train_full: Any, test: Any, val_size: int, augment: Callable, evaluate: Callable
    ) -> None:
        """Hold `val_size` training images out for validation; the test set stays apart."""
        self._check_classes(len(train_full.classes))
        train, val = split_indices(len(train_full), val_size, self.seed)
        self.train_set = TransformedSubset(train_full, train, augment)
        self.val_set = TransformedSubset(train_full, val, evaluate)
        self.test_set = TransformedSubset(test, range(len(test)), evaluate)
        self.calib_base = TransformedSubset(train_full, train, evaluate)

    def _ready(self) -> None:
        if self.train_set is None:
            self.setup("fit")

    def train_dataloader(self) -> DataLoader:
        self._ready()
        return self._loader(self.train_set, True, self.batch_size)

    def val_dataloader(self) -> DataLoader:
        """Training's per-epoch validation: the first `epoch_val_size` images of the split."""
        self._ready()
        assert self.val_set is not None
        total = len(self.val_set)  # type: ignore[arg-type]
        if self.epoch_val_size is None or self.epoch_val_size >= total:
            return self.full_val_dataloader()
        return self._loader(Subset(self.val_set, range(self.epoch_val_size)), False,
                            self.batch_size)

    def full_val_dataloader(self) -> DataLoader:
        """The whole validation split, in a fixed order: what a search scores subnets on."""
        self._ready()
        return self._loader(self.val_set, False, self.batch_size)

    def test_dataloader(self) -> DataLoader:
        self._ready()
        return self._loader(self.test_set, False, self.batch_size)

    def calibration_loader(self) -> DataLoader:
        """The fixed calibration subset: the same images in the same order on every call."""
        self._ready()
        assert self.calib_base is not None
        n = min(self.calib_images, len(self.calib_base))  # type: ignore[arg-type]
        picked = np.random.default_rng(self.seed + 1).permutation(len(self.calib_base))[:n]  # type: ignore[arg-type]
        return self._loader(
            Subset(self.calib_base, np.sort(picked).tolist()), False, self.calib_batch_size
        )
