"""1x1 convolution whose input and output widths are leading slices of the largest one (OFA)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ElasticPointwiseConv2d(nn.Module):
    """`nn.Conv2d(in_max, out_max, 1, bias=False)` that runs as `Conv2d(c_in, active_out, 1)`.

    The input width is read from the input; the output width is set with `set_active`. A
    subnet uses `weight[:out, :in]`; at full width the stored weight is passed as is, so the
    largest subnet pays nothing for weight sharing.

    Args:
        in_channels: largest input width.
        out_channels: largest output width.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 1, 1))
        self.active_out = out_channels
        nn.init.kaiming_normal_(self.weight, mode="fan_out")

    def set_active(self, out_channels: int) -> None:
        """Choose the active output width."""
        if not 0 < out_channels <= self.out_channels:
            raise ValueError(
                f"active output width {out_channels} is outside 1..{self.out_channels}"
            )
        self.active_out = out_channels

    def weight_index(self, in_channels: int) -> tuple[slice, ...] | None:
        """The active slice `[:out, :in]` of the stored weight (None: all of it)."""
        if self.active_out == self.out_channels and in_channels == self.in_channels:
            return None
        return (slice(0, self.active_out), slice(0, in_channels))

    def active_weight(self, in_channels: int) -> torch.Tensor:
        index = self.weight_index(in_channels)
        return self.weight if index is None else self.weight[index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.active_weight(x.shape[1]))

    @torch.no_grad()
    def to_static(self, in_channels: int) -> nn.Conv2d:
        """A plain `nn.Conv2d` holding a copy of the active slice."""
        out = nn.Conv2d(in_channels, self.active_out, 1, bias=False)
        out.to(device=self.weight.device, dtype=self.weight.dtype)
        out.weight.copy_(self.active_weight(in_channels))
        return out

    def extra_repr(self) -> str:
        return f"in={self.in_channels}, out={self.out_channels}, active_out={self.active_out}"
