"""BatchNorm recalibration and accuracy of one subnet: how every subnet is scored.

Weight-sharing leaves BatchNorm statistics that fit no particular subnet, so before a subnet
is evaluated its statistics are re-estimated on a fixed subset of training images, exactly as
Once-for-All does (its `set_running_statistics`).
Training validation and search both call these functions, so their numbers agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

Batch = tuple[torch.Tensor, torch.Tensor]


def resize(images: torch.Tensor, resolution: int | None) -> torch.Tensor:
    """Images at `resolution` pixels per side (bilinear, antialiased when shrinking)."""
    if resolution is None or images.shape[-1] == resolution:
        return images
    shrink = resolution < images.shape[-1]
    return F.interpolate(
        images, size=(resolution, resolution), mode="bilinear", align_corners=False,
        antialias=shrink,
    )


def _prepare(images: torch.Tensor, device: torch.device, resolution: int | None) -> torch.Tensor:
    images = resize(images.to(device, non_blocking=True), resolution)
    return images.contiguous(memory_format=torch.channels_last)


class _BatchStatistics:
    """Per-BatchNorm sums of batch means and variances, weighted by batch size."""

    def __init__(self) -> None:
        self.mean: torch.Tensor | None = None
        self.var: torch.Tensor | None = None
        self.count = 0

    def hook(self, bn: Any, inputs: tuple[torch.Tensor, ...]) -> None:
        """Before `bn` runs (in eval mode): make it normalise with this batch's statistics."""
        x = inputs[0]
        c = x.shape[1]
        mean = x.mean(dim=(0, 2, 3))
        var = (x - mean[None, :, None, None]).square().mean(dim=(0, 2, 3))  # biased, as OFA
        bn.running_mean[:c] = mean
        bn.running_var[:c] = var
        n = x.shape[0]
        self.mean = n * mean if self.mean is None else self.mean + n * mean
        self.var = n * var if self.var is None else self.var + n * var
        self.count += n


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module,
    batches: Iterable[Batch],
    resolution: int | None = None,
    device: torch.device | str = "cpu",
) -> int:
    """Re-estimate every BatchNorm's statistics on `batches` (OFA's `set_running_statistics`).

    While the batches pass, each BatchNorm normalises with the batch's own mean and (biased)
    variance; afterwards its running statistics are the averages of those over the batches,
    weighted by batch size. A BatchNorm no batch reached keeps its statistics. Returns the
    number of images seen; the model's train/eval mode is restored.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    stats: dict[Any, _BatchStatistics] = {
        m: _BatchStatistics() for m in norms if m.running_mean is not None
    }
    saved = {m: (m.running_mean.clone(), m.running_var.clone()) for m in stats}
    handles = [m.register_forward_pre_hook(s.hook) for m, s in stats.items()]
    was_training = model.training
    model.eval()
    seen = 0
    try:
        for images, _ in batches:
            model(_prepare(images, torch.device(device), resolution))
            seen += images.shape[0]
    finally:
        for handle in handles:
            handle.remove()
        for m, s in stats.items():
            mean, var = saved[m]
            if s.mean is not None and s.var is not None:
                c = s.mean.shape[0]
                mean[:c], var[:c] = s.mean / s.count, s.var / s.count
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
        model.train(was_training)
    return seen


@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module,
    batches: Iterable[Batch],
    resolution: int | None = None,
    device: torch.device | str = "cpu",
) -> float:
    """Top-1 accuracy in percent of `model` in eval mode."""
    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        for images, labels in batches:
            logits = model(_prepare(images, torch.device(device), resolution))
            correct += (logits.argmax(1).cpu() == labels).sum().item()
            total += labels.numel()
    finally:
        model.train(was_training)
    return 100.0 * correct / max(total, 1)
