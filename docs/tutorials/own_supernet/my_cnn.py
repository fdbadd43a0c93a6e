"""A plain CNN made a weight-sharing supernet: elastic depth and elastic width per stage.

The network is three stages of 3x3 convolution, BatchNorm and ReLU (each after the first halves
the resolution), global average pooling and a classifier. The supernet stores the widest,
deepest network once; a subnet runs the first `depth` stages with the first `width × channels`
filters of each, so every subnet shares the stored weights. What the framework needs of it is
the supernet protocol (`supernet.protocol.Supernet`): a `space`, `set_active`, `export_subnet`
(an ordinary network with the sliced weights) and `config` (the constructor arguments, stored
in every checkpoint); `SubnetVerbs` adds `set_max`, `set_min` and `sample`. With
`input_resolution` the latency and MACs of a subnet are measured at that image size (this
space has no `resolution` decision).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from supernet.protocol import SubnetVerbs
from supernet.space import Arch, Decision, SearchSpace

WIDTHS = (0.5, 0.75, 1.0)  # fractions of each stage's channels a subnet may keep


class ElasticConvBN(nn.Module):
    """3x3 convolution, BatchNorm and ReLU that run with the first `out` filters."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, out: int) -> torch.Tensor:
        bn = self.bn
        y = F.conv2d(x, self.conv.weight[:out, : x.shape[1]], None, self.conv.stride, 1)
        y = F.batch_norm(y, bn.running_mean[:out], bn.running_var[:out], bn.weight[:out],
                         bn.bias[:out], self.training, bn.momentum, bn.eps)
        return F.relu(y)

    @torch.no_grad()
    def to_static(self, cin: int, out: int) -> nn.Sequential:
        """The same layer as plain modules holding the slices."""
        conv = nn.Conv2d(cin, out, 3, self.conv.stride, 1, bias=False)
        conv.weight.copy_(self.conv.weight[:out, :cin])
        bn = nn.BatchNorm2d(out)
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn, name).copy_(getattr(self.bn, name)[:out])
        return nn.Sequential(conv, bn, nn.ReLU())


class MyCNNSupernet(SubnetVerbs, nn.Module):
    """Three conv stages; a subnet picks how many run (`depth`) and the width of each (`w<i>`).

    Args:
        num_classes: classifier outputs.
        in_channels: image channels.
        channels: the channels of each stage at full width.
        input_resolution: the image size the network runs at (for latency and MACs).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        channels: Sequence[int] = (16, 32, 64),
        input_resolution: int = 24,
    ) -> None:
        super().__init__()
        self._config = {"num_classes": num_classes, "in_channels": in_channels,
                        "channels": list(channels), "input_resolution": input_resolution}
        self.channels, self.input_resolution = list(channels), int(input_resolution)
        stages = len(self.channels)
        self.space = SearchSpace("my_cnn", [
            Decision("depth", tuple(range(1, stages + 1))),
            # a stage's width only matters when the stage runs
            *(Decision(f"w{i}", WIDTHS, ("depth", i + 1)) for i in range(stages)),
        ])  # fmt: skip
        cins = [in_channels, *self.channels[:-1]]
        self.stages = nn.ModuleList(
            ElasticConvBN(cin, cout, 1 if i == 0 else 2)
            for i, (cin, cout) in enumerate(zip(cins, self.channels, strict=True))
        )
        self.classifier = nn.Linear(self.channels[-1], num_classes)
        self.active_arch: Arch = self.space.largest()

    def config(self) -> dict[str, Any]:
        return copy.deepcopy(self._config)

    def set_active(self, arch: Mapping[str, Any]) -> Arch:
        self.active_arch = self.space.arch(arch)  # a clear error for a value outside the space
        return self.active_arch

    def widths(self, arch: Mapping[str, Any]) -> list[int]:
        """Channels of each stage that runs."""
        return [max(1, round(c * arch[f"w{i}"]))
                for i, c in enumerate(self.channels[: arch["depth"]])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage, out in zip(self.stages, self.widths(self.active_arch), strict=False):
            x = stage(x, out)
        x = x.mean((2, 3))
        return F.linear(x, self.classifier.weight[:, : x.shape[1]], self.classifier.bias)

    @torch.no_grad()
    def export_subnet(self, arch: Mapping[str, Any] | None = None) -> nn.Module:
        arch = self.space.arch(self.active_arch if arch is None else arch)
        layers, cin = [], self._config["in_channels"]
        for stage, out in zip(self.stages, self.widths(arch), strict=False):
            layers.append(stage.to_static(cin, out))
            cin = out
        classifier = nn.Linear(cin, self.classifier.out_features)
        classifier.weight.copy_(self.classifier.weight[:, :cin])
        classifier.bias.copy_(self.classifier.bias)
        net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), classifier)
        return net.train(self.training)
