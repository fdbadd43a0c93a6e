"""Images in the ImageFolder layout (`root/train/<class>/*.jpg`): ImageNet or your own data.

The class count comes from the class folders of `train/` unless it is given. Validation
(what training reports and a search scores) is held out of `train/`; an optional `val/`
folder is the test split, which neither sees. Transforms are timm's ImageNet transforms
(`timm.data.create_transform`): random-resized crop, flip, optional colour jitter,
RandAugment and random erasing for training; resize to `image_size / crop_pct` and centre
crop for evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, create_transform
from torch.utils.data import DataLoader
from torchvision import datasets

from supernet.data.images import (
    ImageDataModule,
    TransformedSubset,
    plain_options,
    split_indices,
)
from supernet.errors import ConfigError, DatasetError

# what the constructor sets itself; everything else in `augment` goes to timm unchanged
_OWN_KEYS = {"input_size", "is_training", "interpolation", "mean", "std", "crop_pct"}


class ImageFolderDataModule(ImageDataModule):
    """ImageFolder data at `image_size` (the largest resolution of the space).

    Args:
        root: folder holding `train/<class>/...` and, optionally, `val/<class>/...`.
        image_size: training crop and evaluation size.
        num_classes: classes; None takes the number of class folders in `train/`.
        resolutions: the elastic input resolutions, up to `image_size` (None: only it).
        val_size: training images held out for validation: a count, or a fraction if < 1.
        augment: training options of `timm.data.create_transform` (`scale`, `ratio`, `hflip`,
            `color_jitter`, `auto_augment`, `re_prob`, ...).
        crop_pct: evaluation crop: resize to `image_size / crop_pct`, then centre-crop.
        interpolation: resampling of the crops (`bilinear`, `bicubic`, `random`).
        mean: per-channel normalisation mean of pixel values in [0, 1].
        std: per-channel normalisation standard deviation.
        **kwargs: batch size, workers, calibration subset and seed (see `ImageDataModule`).
    """

    def __init__(
        self,
        root: str | None = None,
        image_size: int = 224,
        num_classes: int | None = None,
        channels: int = 3,
        resolutions: Sequence[int] | None = None,
        stem_stride: int = 2,
        first_unit_stride: int = 2,
        val_size: float = 10000,
        augment: Mapping[str, Any] | None = None,
        crop_pct: float = 0.875,
        interpolation: str = "bilinear",
        mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
        std: Sequence[float] = IMAGENET_DEFAULT_STD,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            num_classes, channels, resolutions or (image_size,), stem_stride, first_unit_stride,
            **kwargs,
        )
        if channels != 3:
            raise ConfigError(f"data.channels={channels}: ImageFolder images load as RGB; use 3")
        if max(self.resolutions) > image_size:
            raise ConfigError(
                f"data.resolutions go up to {max(self.resolutions)} but data.image_size is "
                f"{image_size}; list sizes up to it, e.g. data.resolutions=[{image_size * 3 // 4},"
                f"{image_size}]"
            )
        if val_size <= 0:
            raise ConfigError(f"data.val_size must be > 0 (a count, or a fraction < 1), got "
                              f"{val_size}")
        clash = _OWN_KEYS & set(augment or {})
        if clash:
            raise ConfigError(f"data.augment cannot set {sorted(clash)}: they are data keys "
                              "of their own (image_size, interpolation, mean, std, crop_pct)")
        self.root, self.image_size, self.val_size = root, image_size, val_size
        self.augment = plain_options(augment)
        self.crop_pct, self.interpolation = crop_pct, interpolation
        self.mean, self.std = tuple(mean), tuple(std)

    # --- folders ---------------------------------------------------------------------------------
    def _folder(self, split: str) -> Path:
        if not self.root:
            raise DatasetError("ImageFolder data needs its folder: add data.root=/path")
        return Path(self.root) / split

    def _train_folder(self) -> Path:
        folder = self._folder("train")
        if not folder.is_dir():
            raise DatasetError(
                f"no training images at {folder}: expected {self.root}/train/<class>/<image> "
                f"(and optionally {self.root}/val/<class>/<image>); fix data.root"
            )
        return folder

    @staticmethod
    def _image_folder(folder: Path) -> datasets.ImageFolder:
        try:
            return datasets.ImageFolder(str(folder))
        except FileNotFoundError as err:  # no class folders, or a class folder without images
            raise DatasetError(f"{folder} is not an ImageFolder tree: {err}") from None

    def prepare_data(self) -> None:
        self._train_folder()

    # --- transforms ------------------------------------------------------------------------------
    def transforms(self) -> tuple[Any, Any]:
        """(training, evaluation) transforms of PIL images, built by timm."""
        common: dict[str, Any] = {
            "interpolation": self.interpolation, "mean": self.mean, "std": self.std
        }
        try:
            train = create_transform(self.image_size, is_training=True, **common, **self.augment)
        except (TypeError, AssertionError, ValueError) as err:
            raise ConfigError(
                f"data.augment={self.augment} is not a valid set of training options of "
                f"timm.data.create_transform ({err})"
            ) from None
        interpolation = "bilinear" if self.interpolation == "random" else self.interpolation
        evaluate = create_transform(
            self.image_size, is_training=False, crop_pct=self.crop_pct,
            interpolation=interpolation, mean=self.mean, std=self.std,
        )
        return train, evaluate

    # --- splits ----------------------------------------------------------------------------------
    def _holdout(self, n: int) -> int:
        if self.val_size < 1:
            return max(1, round(self.val_size * n))
        return int(self.val_size)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        augment, evaluate = self.transforms()
        train_full = self._image_folder(self._train_folder())
        classes = list(train_full.classes)
        if len(classes) < 2:
            raise DatasetError(f"{self._folder('train')} has {len(classes)} class folder; "
                               "classification needs at least 2")
        self._check_classes(len(classes))
        self.classes = classes
        train, val = split_indices(len(train_full), self._holdout(len(train_full)), self.seed)
        self.train_set = TransformedSubset(train_full, train, augment)
        self.val_set = TransformedSubset(train_full, val, evaluate)
        self.calib_base = TransformedSubset(train_full, train, evaluate)
        test_folder = self._folder("val")
        if test_folder.is_dir():
            test = self._image_folder(test_folder)
            if list(test.classes) != classes:
                missing = sorted(set(classes) - set(test.classes))
                extra = sorted(set(test.classes) - set(classes))
                raise DatasetError(
                    f"{test_folder} has other class folders than {self._folder('train')} "
                    f"(missing: {missing}, extra: {extra}); the labels would not match"
                )
            self.test_set = TransformedSubset(test, range(len(test)), evaluate)

    def test_dataloader(self) -> DataLoader:
        self._ready()
        if self.test_set is None:
            raise DatasetError(f"no test split: {self._folder('val')} does not exist")
        return super().test_dataloader()
