"""Image-classification validation: top-1 accuracy of a subnet after BN recalibration.

A subnet is exported as a static network, its BatchNorm statistics are re-estimated on the
fixed calibration subset of training images (OFA's protocol), and it is scored on the
validation split (never the test split), streamed batch by batch. The settings that change
the number are part of the store key.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence, Sized
from typing import Any, cast

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from search.evaluation.device import evaluation_device
from supernet.calibration import evaluate_accuracy, recalibrate_bn, resize
from supernet.errors import ConfigError
from supernet.protocol import Supernet
from supernet.space import Arch


def _capped(loader: DataLoader, max_images: int | None) -> DataLoader:
    """`loader` over only the first `max_images` examples of its dataset (same settings)."""
    dataset: Any = loader.dataset
    if max_images is None or max_images >= len(dataset):
        return loader
    return DataLoader(
        Subset(dataset, range(max_images)),
        batch_size=loader.batch_size,
        shuffle=False,
        num_workers=loader.num_workers,
        persistent_workers=loader.num_workers > 0,
        pin_memory=loader.pin_memory,
    )


class ClassificationEvaluator:
    """Top-1 validation accuracy (percent) after BN recalibration.

    Images stream through the data module's loaders for every subnet, so no split is held in
    memory (ImageNet's validation images would not fit); the calibration subset is a fixed
    list of training images in a fixed order, the same for every subnet.

    Args:
        supernet: the trained supernet (weights are not changed: subnets are exported).
        datamodule: gives `calibration_loader()` and `full_val_dataloader()` (the whole split,
            not training's per-epoch subset) or `val_dataloader()`.
        device: where subnets run (`cuda` needs a visible GPU).
        max_val_batches: cap on validation batches (None: the whole split).
        max_val_images: cap on validation images, the first ones of the split (None: all).
    """

    metric = "accuracy"
    metrics = ("accuracy",)
    task = "image classification"

    def __init__(
        self,
        supernet: Supernet,
        datamodule: Any,
        device: str | torch.device = "cpu",
        max_val_batches: int | None = None,
        max_val_images: int | None = None,
    ) -> None:
        for name, cap in (("max_val_batches", max_val_batches), ("max_val_images", max_val_images)):
            if cap is not None and cap < 1:
                raise ConfigError(f"evaluation.{name} must be ≥ 1 or null, got {cap}")
        self.supernet = supernet
        self.device = evaluation_device(device)
        self.max_val_batches = max_val_batches
        self.calibration = datamodule.calibration_loader()
        whole_split = getattr(datamodule, "full_val_dataloader", datamodule.val_dataloader)
        self.validation = _capped(whole_split(), max_val_images)
        self.calib_images = len(cast(Sized, self.calibration.dataset))
        self.val_images = len(cast(Sized, self.validation.dataset))
        if max_val_batches is not None and self.validation.batch_size:
            self.val_images = min(self.val_images, max_val_batches * self.validation.batch_size)

    def settings(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "split": "val",
            "calib_images": self.calib_images,
            "val_images": self.val_images,
        }

    def _validation_batches(self) -> Iterable[Any]:
        return itertools.islice(self.validation, self.max_val_batches)

    def deployable(self, arch: Arch) -> nn.Module:
        """The static subnet exactly as it is scored: exported, BatchNorm recalibrated, eval."""
        net = self.supernet.export_subnet(arch).to(self.device)
        net.to(memory_format=torch.channels_last)
        recalibrate_bn(net, self.calibration, arch.get("resolution"), self.device)
        return net.eval()

    def score_model(self, model: nn.Module, arch: Arch) -> dict[str, float]:
        """Score a static model of `arch` as it is (no recalibration): re-validates exports."""
        resolution = arch.get("resolution")
        batches = self._validation_batches()
        return {"accuracy": evaluate_accuracy(model, batches, resolution, self.device)}

    def example_inputs(self, arch: Arch, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        """One input batch of `arch`'s resolution, as the exported model takes it."""
        images = next(iter(self.validation))[0][:batch_size]
        return (resize(images, arch.get("resolution")).to(self.device),)

    def score(self, arch: Arch) -> dict[str, float]:
        return self.score_model(self.deployable(arch), arch)

    def __call__(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        return [self.score(a) for a in archs]

    @staticmethod
    def handles(record: Mapping[str, Any]) -> bool:
        """Any checkpoint no more specific evaluator claims."""
        return True

    @staticmethod
    def options(evaluation: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
        """Constructor arguments from the `evaluation:` config block."""
        return {
            "device": evaluation.get("device", "cpu"),
            "max_val_batches": evaluation.get("max_val_batches"),
            "max_val_images": evaluation.get("max_val_images"),
        }
