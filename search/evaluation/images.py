"""Image-classification validation: top-1 accuracy of a subnet after BN recalibration.

A subnet is exported as a static network, its BatchNorm
statistics are re-estimated on the fixed calibration subset of training images, and it is
scored on the validation split (never the test split). The settings that change the number
are part of the store key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from supernet.calibration import evaluate_accuracy, recalibrate_bn, resize
from supernet.protocol import Supernet
from supernet.space import Arch


class ClassificationEvaluator:
    """Top-1 validation accuracy (percent) after BN recalibration.

    Args:
        supernet: the trained supernet (weights are not changed: subnets are exported).
        datamodule: gives `calibration_loader()` and `val_dataloader()`.
        device: where subnets run.
        max_val_batches: cap on validation batches (None: the whole split).
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
    ) -> None:
        self.supernet = supernet
        self.device = torch.device(device)
        self.max_val_batches = max_val_batches
        # materialise the fixed subsets once: every subnet sees exactly the same images
        self.calibration = list(datamodule.calibration_loader())
        val = list(datamodule.val_dataloader())
        self.validation = val if max_val_batches is None else val[:max_val_batches]
        self.calib_images = sum(int(x.shape[0]) for x, _ in self.calibration)
        self.val_images = sum(int(x.shape[0]) for x, _ in self.validation)

    def settings(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "split": "val",
            "calib_images": self.calib_images,
            "val_images": self.val_images,
        }

    def deployable(self, arch: Arch) -> nn.Module:
        """The static subnet exactly as it is scored: exported, BatchNorm recalibrated, eval."""
        net = self.supernet.export_subnet(arch).to(self.device)
        net.to(memory_format=torch.channels_last)
        recalibrate_bn(net, self.calibration, arch.get("resolution"), self.device)
        return net.eval()

    def score_model(self, model: nn.Module, arch: Arch) -> dict[str, float]:
        """Score a static model of `arch` as it is (no recalibration): re-validates exports."""
        resolution = arch.get("resolution")
        return {"accuracy": evaluate_accuracy(model, self.validation, resolution, self.device)}

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
        }
