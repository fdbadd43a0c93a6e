"""Squeeze-and-excitation with an elastic width, and its static counterpart (MobileNetV3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from supernet.ops.channels import make_divisible


def se_width(channels: int, reduction: int = 4) -> int:
    """Hidden width of the SE bottleneck for `channels` inputs (OFA's rule)."""
    return make_divisible(channels // reduction, 8)


class SqueezeExcite(nn.Module):
    """Static SE: global average → 1x1 conv → ReLU → 1x1 conv → hard sigmoid → rescale.

    Args:
        channels: input and output width.
        hidden: bottleneck width.
    """

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, hidden, 1, bias=True)
        self.expand = nn.Conv2d(hidden, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.relu(self.reduce(x.mean((2, 3), keepdim=True)))
        return x * F.hardsigmoid(self.expand(s))


def excite(
    x: torch.Tensor,
    reduce_weight: torch.Tensor,
    reduce_bias: torch.Tensor,
    expand_weight: torch.Tensor,
    expand_bias: torch.Tensor,
) -> torch.Tensor:
    """SE with explicit weights: what `SqueezeExcite` computes with its own."""
    s = F.relu(F.conv2d(x.mean((2, 3), keepdim=True), reduce_weight, reduce_bias))
    return x * F.hardsigmoid(F.conv2d(s, expand_weight, expand_bias))


class ElasticSqueezeExcite(nn.Module):
    """SE over the first `c` channels of its input; the bottleneck is `se_width(c)` wide.

    The width is read from the input, and the reduce/expand convolutions use the leading
    slices of the largest ones (OFA's DynamicSE).

    Args:
        channels: largest input width.
        reduction: bottleneck reduction factor.
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.channels = channels
        self.reduction = reduction
        hidden = se_width(channels, reduction)
        self.hidden = hidden
        self.reduce_weight = nn.Parameter(torch.empty(hidden, channels, 1, 1))
        self.reduce_bias = nn.Parameter(torch.zeros(hidden))
        self.expand_weight = nn.Parameter(torch.empty(channels, hidden, 1, 1))
        self.expand_bias = nn.Parameter(torch.zeros(channels))
        nn.init.kaiming_normal_(self.reduce_weight, mode="fan_out")
        nn.init.kaiming_normal_(self.expand_weight, mode="fan_out")

    def weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The stored reduce/expand weights and biases, in the order `weight_indices` uses."""
        return self.reduce_weight, self.reduce_bias, self.expand_weight, self.expand_bias

    def weight_indices(self, c: int) -> list[tuple[slice, ...] | None]:
        """The slices of `weights()` used at width `c` (None: the whole tensor)."""
        if c == self.channels:
            return [None] * 4
        cs, hs = slice(0, c), slice(0, se_width(c, self.reduction))
        return [(hs, cs), (hs,), (cs, hs), (cs,)]

    def _slices(self, c: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        rw, rb, ew, eb = (
            t if i is None else t[i]
            for t, i in zip(self.weights(), self.weight_indices(c), strict=True)
        )
        return rw, rb, ew, eb

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return excite(x, *self._slices(x.shape[1]))

    @torch.no_grad()
    def to_static(self, channels: int) -> SqueezeExcite:
        """A plain `SqueezeExcite` holding copies of the slices used at width `channels`."""
        rw, rb, ew, eb = self._slices(channels)
        out = SqueezeExcite(channels, rw.shape[0])
        out.to(device=rw.device, dtype=rw.dtype)
        state = {"reduce.weight": rw, "reduce.bias": rb, "expand.weight": ew, "expand.bias": eb}
        out.load_state_dict(state)
        return out

    @torch.no_grad()
    def permute_(self, order: torch.Tensor) -> None:
        """Reorder the SE's input/output channels by `order`, then its bottleneck by importance.

        The bottleneck channels are sorted by the L1 norm of their expand weights (OFA), so
        narrower blocks keep the most important ones.
        """
        self.reduce_weight.copy_(self.reduce_weight[:, order])
        self.expand_weight.copy_(self.expand_weight[order])
        self.expand_bias.copy_(self.expand_bias[order])
        importance = self.expand_weight.abs().sum(dim=(0, 2, 3))
        hidden_order = torch.sort(importance, descending=True, stable=True).indices
        self.expand_weight.copy_(self.expand_weight[:, hidden_order])
        self.reduce_weight.copy_(self.reduce_weight[hidden_order])
        self.reduce_bias.copy_(self.reduce_bias[hidden_order])

    def extra_repr(self) -> str:
        return f"channels={self.channels}, hidden={self.hidden}"
