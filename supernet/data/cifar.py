"""CIFAR-10 and CIFAR-100 through torchvision, with a validation split held out of training.

The official test split stays for the final report; a search only sees the validation split.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision import datasets
from torchvision.transforms import v2

from supernet.data.images import ImageDataModule
from supernet.errors import DatasetError

_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


class CIFARDataModule(ImageDataModule):
    """CIFAR-10 or CIFAR-100 at 32×32.

    Args:
        name: `cifar10` or `cifar100`.
        root: where the torchvision files are or will be downloaded.
        download: fetch the files when they are missing (needs network).
        val_size: training images held out for validation.
        **kwargs: batch size, workers, calibration subset and seed (see `ImageDataModule`).
    """

    image_size = 32

    name: str

    def __init__(
        self,
        name: str = "cifar10",
        num_classes: int = 10,
        channels: int = 3,
        resolutions: tuple[int, ...] = (24, 28, 32),
        root: str = "data",
        download: bool = True,
        val_size: int = 5000,
        **kwargs,
    ) -> None:
        super().__init__(num_classes, channels, resolutions, **kwargs)
        self.name, self.root, self.download, self.val_size = name, root, download, val_size

    def _dataset(self, train: bool) -> datasets.VisionDataset:
        cls = datasets.CIFAR10 if self.name == "cifar10" else datasets.CIFAR100
        try:
            return cls(self.root, train=train, download=self.download)
        except (OSError, RuntimeError) as err:  # URLError is an OSError
            raise DatasetError(
                f"{self.name} is not under {Path(self.root).resolve()} and could not be "
                f"downloaded ({err.__class__.__name__}: {err}). Connect to the internet, or copy "
                f"the torchvision files there and set data.root=<that folder>."
            ) from None

    def prepare_data(self) -> None:
        self._dataset(True)
        self._dataset(False)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        mean, std = _STATS[self.name]
        to_tensor = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
        evaluate = v2.Compose([*to_tensor, v2.Normalize(mean, std)])
        augment = v2.Compose(
            [v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), *to_tensor,
             v2.Normalize(mean, std)]
        )
        train_full, test = self._dataset(True), self._dataset(False)
        self._split_folders(train_full, test, self.val_size, augment, evaluate)
