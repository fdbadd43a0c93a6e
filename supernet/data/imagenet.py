"""ImageNet (or any dataset) in the ImageFolder layout: `root/train/<class>/*.jpg`, `root/val/...`.

A validation split for search is held out of `train`; the official `val` folder is the test set.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torchvision import datasets
from torchvision.transforms import v2

from supernet.data.images import ImageDataModule
from supernet.errors import DatasetError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class ImageFolderDataModule(ImageDataModule):
    """ImageFolder data at `image_size` (the largest resolution of the space).

    Args:
        root: folder holding `train/` and `val/` in the ImageFolder layout.
        image_size: training crop and evaluation size.
        val_size: training images held out for validation.
        **kwargs: batch size, workers, calibration subset and seed (see `ImageDataModule`).
    """

    def __init__(
        self,
        root: str | None = None,
        image_size: int = 224,
        val_size: int = 10000,
        num_classes: int = 1000,
        channels: int = 3,
        resolutions: tuple[int, ...] = tuple(range(128, 225, 4)),
        stem_stride: int = 2,
        first_unit_stride: int = 2,
        **kwargs,
    ) -> None:
        super().__init__(
            num_classes, channels, resolutions, stem_stride, first_unit_stride, **kwargs
        )
        self.root, self.image_size, self.val_size = root, image_size, val_size

    def _folder(self, split: str) -> Path:
        if not self.root:
            raise DatasetError("data=imagenet needs the dataset folder: add data.root=/path")
        folder = Path(self.root) / split
        if not folder.is_dir():
            raise DatasetError(
                f"no ImageFolder split at {folder}: expected {self.root}/train/<class>/*.jpg "
                f"and {self.root}/val/<class>/*.jpg; fix data.root"
            )
        return folder

    def prepare_data(self) -> None:
        """Both splits hold class folders, as many as `num_classes`: before any model is built."""
        for split in ("train", "val"):
            folder = self._folder(split)
            try:
                classes, _ = datasets.folder.find_classes(str(folder))
            except FileNotFoundError:
                raise DatasetError(
                    f"{folder} holds no class folders: an ImageFolder split is "
                    f"{folder}/<class>/<image>; fix data.root"
                ) from None
            self._check_classes(len(classes))

    def _images(self, split: str) -> datasets.ImageFolder:
        folder = self._folder(split)
        try:
            return datasets.ImageFolder(str(folder))
        except FileNotFoundError as err:  # class folders without a single image file
            raise DatasetError(f"{folder}: {err}; fix data.root") from None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        size = self.image_size
        tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
        evaluate = v2.Compose(
            [v2.Resize(math.ceil(size / 0.875)), v2.CenterCrop(size), *tail]
        )
        augment = v2.Compose([v2.RandomResizedCrop(size), v2.RandomHorizontalFlip(), *tail])
        train_full = self._images("train")
        test = self._images("val")
        self._split_folders(train_full, test, self.val_size, augment, evaluate)
