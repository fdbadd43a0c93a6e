"""BatchNorm whose active width is the leading slice of the largest one (OFA)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """`nn.BatchNorm2d(max_channels)` that normalises inputs of any width `c <= max_channels`.

    The width is read from the input, and the first `c` affine parameters and running
    statistics are used (and, in training, updated in place). At full width it is exactly
    `nn.BatchNorm2d`, so the largest subnet pays nothing. It subclasses `BatchNorm2d` so code
    that resets or recalibrates BatchNorm statistics treats it like any other.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if c == self.num_features:
            return super().forward(x)
        if c > self.num_features:
            raise ValueError(f"input has {c} channels; this BatchNorm holds {self.num_features}")
        weight = self.weight[:c] if self.weight is not None else None
        bias = self.bias[:c] if self.bias is not None else None
        return batch_norm(self, x, weight, bias)

    def to_static(self, channels: int) -> nn.BatchNorm2d:
        """A plain `nn.BatchNorm2d(channels)` with copies of the leading parameters and stats."""
        return static_batchnorm(self, torch.arange(channels, device=self.weight.device))

    @torch.no_grad()
    def permute_(self, order: torch.Tensor) -> None:
        """Reorder the channels in place (parameters and statistics) by index `order`."""
        for t in (self.weight, self.bias, self.running_mean, self.running_var):
            if t is not None:
                t.copy_(t[order])


def batch_norm(
    bn: nn.BatchNorm2d,
    x: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    counted: bool = False,
) -> torch.Tensor:
    """`bn` applied to the `c = x.shape[1]` leading channels, with affine `weight`/`bias`.

    The first `c` running statistics are used (and updated in place in training), exactly as
    `nn.BatchNorm2d` does at full width. `counted=True` means the caller has already advanced
    `num_batches_tracked` for this batch (see `count_batches`).
    """
    c = x.shape[1]
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        if not counted:
            bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # cumulative average: the factor needs the count itself
            factor = 1.0 / float(bn.num_batches_tracked)
    use_batch_stats = bn.training or bn.running_mean is None
    track = not bn.training or bn.track_running_stats
    mean, var = (bn.running_mean, bn.running_var) if track else (None, None)
    if mean is not None and var is not None and c != bn.num_features:
        mean, var = mean[:c], var[:c]
    return F.batch_norm(x, mean, var, weight, bias, use_batch_stats, factor, bn.eps)


def count_batches(norms: list[nn.BatchNorm2d]) -> None:
    """Advance `num_batches_tracked` of every training BatchNorm in one multi-tensor add."""
    counters = [
        bn.num_batches_tracked
        for bn in norms
        if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None
    ]
    if counters:
        torch._foreach_add_(counters, 1)


@torch.no_grad()
def static_batchnorm(bn: nn.BatchNorm2d, index: torch.Tensor) -> nn.BatchNorm2d:
    """A new `nn.BatchNorm2d` holding channels `index` of `bn` (settings and stats included)."""
    out = nn.BatchNorm2d(
        len(index),
        eps=bn.eps,
        momentum=bn.momentum,
        affine=bn.affine,
        track_running_stats=bn.track_running_stats,
    )
    ref = bn.weight if bn.weight is not None else bn.running_mean
    out.to(device=ref.device, dtype=ref.dtype)
    pairs: list[tuple[torch.Tensor | None, torch.Tensor | None]]
    pairs = [(out.weight, bn.weight), (out.bias, bn.bias)]
    pairs += [(out.running_mean, bn.running_mean), (out.running_var, bn.running_var)]
    for dst, src in pairs:
        if dst is not None and src is not None:
            dst.copy_(src[index])
    if out.num_batches_tracked is not None and bn.num_batches_tracked is not None:
        out.num_batches_tracked.copy_(bn.num_batches_tracked)
    return out.train(bn.training)
