"""The Once-for-All MobileNetV3 supernet (arXiv 1908.09791).

Elastic kernel size {3, 5, 7} (with kernel transformation matrices), expansion ratio
{3, 4, 6} and depth {2, 3, 4} per unit, and input resolution. Subnets share the leading
slices of the largest weights; `export_subnet` copies them into a plain static network.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn

from supernet.calibration import resize
from supernet.errors import ConfigError
from supernet.mobilenetv3.blocks import DEPTHWISE, BlockPlan, ElasticMBConv
from supernet.mobilenetv3.cost import mobilenetv3_cost
from supernet.mobilenetv3.layout import build_layout
from supernet.mobilenetv3.parts import LatencyPart, mobilenetv3_parts
from supernet.mobilenetv3.space import mobilenetv3_space
from supernet.mobilenetv3.static import (
    MBConvBlock,
    MobileNetV3Head,
    MobileNetV3Net,
    conv_bn_act,
    init_weights,
)
from supernet.ops.elastic_batchnorm import count_batches
from supernet.ops.elastic_depthwise import KernelTransforms
from supernet.ops.shared_slices import Slices
from supernet.protocol import SubnetVerbs
from supernet.space import Arch

KNOWN_ARCHS = 4096  # validated archs remembered by `set_active`
KNOWN_SLICES = 16  # subnets whose slice layout is kept (a sandwich step trains 4)


def _choices(name: str, values: Sequence[int], odd: bool = False) -> list[int]:
    out = sorted({int(v) for v in values})
    if not out or out[0] <= 0 or any(int(v) != v for v in values):
        raise ConfigError(f"supernet.{name} must list positive integers, got {list(values)}")
    if odd and any(v % 2 == 0 for v in out):
        raise ConfigError(f"supernet.{name} must be odd, got {list(values)}")
    return out


def _forget_slices(module: MobileNetV3Supernet, incompatible: object) -> None:
    module._slices_by_arch.clear()  # load_state_dict(assign=True) may have replaced weights


class MobileNetV3Supernet(SubnetVerbs, nn.Module):
    """Weight-sharing MobileNetV3 with OFA's elastic kernel, expansion, depth and resolution.

    `forward` runs the active subnet on inputs already at `active_arch["resolution"]`
    (`resize_input` does that). Checkpoints store `config()`, from which the supernet is
    rebuilt.

    Args:
        num_classes: classifier outputs.
        in_channels: image channels.
        width_mult: width multiplier of every layer (1.2 gives OFA's wider supernet).
        kernel_sizes: depthwise kernel size choices (odd).
        expand_ratios: expansion ratio choices.
        depths: blocks-per-unit choices (a contiguous range).
        resolutions: input side choices in pixels.
        stem_stride: stride of the stem conv (1 for 32-pixel inputs).
        first_unit_stride: stride of the first elastic unit (1 for 32-pixel inputs).
        dropout: before the classifier.
        stage_channels: the five unit widths before `width_mult` (default 24/40/80/112/160).
        head_channels: final-expand and feature-mix widths before `width_mult` (960, 1280).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        width_mult: float = 1.0,
        kernel_sizes: Sequence[int] = (3, 5, 7),
        expand_ratios: Sequence[int] = (3, 4, 6),
        depths: Sequence[int] = (2, 3, 4),
        resolutions: Sequence[int] = (224,),
        stem_stride: int = 2,
        first_unit_stride: int = 2,
        dropout: float = 0.1,
        stage_channels: Sequence[int] | None = None,
        head_channels: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        depth_list = _choices("depths", depths)
        if depth_list != list(range(depth_list[0], depth_list[-1] + 1)):
            raise ConfigError(f"supernet.depths must be a contiguous range, got {list(depths)}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"supernet.dropout must be in [0, 1), got {dropout}")
        self._config: dict[str, Any] = {
            "num_classes": int(num_classes),
            "in_channels": int(in_channels),
            "width_mult": float(width_mult),
            "kernel_sizes": _choices("kernel_sizes", kernel_sizes, odd=True),
            "expand_ratios": _choices("expand_ratios", expand_ratios),
            "depths": depth_list,
            "resolutions": _choices("resolutions", resolutions),
            "stem_stride": int(stem_stride),
            "first_unit_stride": int(first_unit_stride),
            "dropout": float(dropout),
            "stage_channels": None if stage_channels is None else [int(c) for c in stage_channels],
            "head_channels": None if head_channels is None else [int(c) for c in head_channels],
        }
        cfg = self._config
        self.layout = build_layout(
            cfg["num_classes"],
            cfg["in_channels"],
            cfg["width_mult"],
            max(depth_list),
            cfg["stem_stride"],
            cfg["first_unit_stride"],
            cfg["stage_channels"],
            cfg["head_channels"],
        )
        self.space = mobilenetv3_space(
            cfg["kernel_sizes"], cfg["expand_ratios"], depth_list, cfg["resolutions"]
        )
        layout = self.layout
        stem = layout.stem_channels
        self.stem = conv_bn_act(layout.in_channels, stem, 3, layout.stem_stride, act="hswish")
        self.first_block = MBConvBlock.create(
            stem, stem, layout.first_block_channels, 3, 1, "relu", se=False
        )
        self.units = nn.ModuleList(
            nn.ModuleList(
                ElasticMBConv(block, cfg["kernel_sizes"], cfg["expand_ratios"]) for block in unit
            )
            for unit in layout.units
        )
        self.head = MobileNetV3Head(
            layout.last_channels,
            layout.final_expand,
            layout.feature_mix,
            layout.num_classes,
            cfg["dropout"],
        )
        init_weights(self)
        self._decisions = [  # (depth label, position, kernel label, expand label, block)
            (f"s{u}_depth", b, f"s{u}_b{b}_kernel", f"s{u}_b{b}_expand", block)
            for u, unit in enumerate(self.units, start=1)
            for b, block in enumerate(cast(Iterable[ElasticMBConv], unit), start=1)
        ]
        self._known_archs: dict[str, Arch] = {}
        self._slices_by_arch: dict[str, tuple[tuple[BlockPlan, ...], Slices]] = {}
        self.register_load_state_dict_post_hook(_forget_slices)
        self._active_blocks: list[ElasticMBConv] = []
        self.active_arch: Arch = self.space.largest()
        self.set_max()

    # --- verbs -------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Constructor arguments as plain Python: `MobileNetV3Supernet(**config())` rebuilds it."""
        return copy.deepcopy(self._config)

    def set_active(self, arch: Mapping[str, Any]) -> Arch:
        """Make `arch` the running subnet (a SpaceError names any value outside the space)."""
        arch = self._checked(arch)
        active: list[ElasticMBConv] = []
        for depth_label, position, kernel_label, expand_label, block in self._decisions:
            if position <= arch[depth_label]:
                block.set_active(arch[kernel_label], arch[expand_label])
                active.append(block)
        self._active_blocks = active
        self.active_arch = arch
        return arch

    def _checked(self, arch: Mapping[str, Any]) -> Arch:
        """`space.arch(arch)`, remembered by id: a training step sets a few archs again and
        again, and validating one costs as much as setting it."""
        if isinstance(arch, Arch):
            known = self._known_archs.get(arch.arch_id)
            if known is not None:
                return known
        checked = self.space.arch(arch)
        if len(self._known_archs) >= KNOWN_ARCHS:
            self._known_archs.clear()
        self._known_archs[checked.arch_id] = checked
        return checked

    def resize_input(self, x: torch.Tensor) -> torch.Tensor:
        """Images resized (bilinear) to the active resolution; unchanged when they match."""
        return resize(x, self.active_arch["resolution"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the active subnet (inputs must already be at the active resolution).

        The elastic blocks run on weights taken for all of them at once: with gradients, one
        graph node slices every shared weight (and its backward writes every gradient in one
        go); without, each block's weights are computed once per arch and reused.
        """
        x = self.first_block(self.stem(x))
        blocks = self._active_blocks
        plans = [block.plan() for block in blocks]
        count_batches([bn for plan in plans for bn in plan.norms])
        weights = self._taken_weights(plans) if torch.is_grad_enabled() else None
        for i, block in enumerate(blocks):
            x = block(x, block.cached_weights() if weights is None else weights[i], counted=True)
        return self.head(x)

    def _taken_weights(self, plans: list[BlockPlan]) -> list[list[torch.Tensor]]:
        """Every active block's weights for `ElasticMBConv.run`, sliced (and the depthwise
        kernels transformed) in one graph node."""
        taken = self._slices(plans).take()
        out, start = [], 0
        for plan in plans:
            n = len(plan.weights)
            out.append(taken[start : start + n])
            start += n
        return out

    def _slices(self, plans: list[BlockPlan]) -> Slices:
        """The `Slices` of the active subnet, laid out once per subnet (a training step comes
        back to the same few subnets) and again when a block's plan was replaced."""
        key = self.active_arch.arch_id
        known = self._slices_by_arch.get(key)
        if (
            known is not None
            and len(known[0]) == len(plans)
            and all(a is b for a, b in zip(known[0], plans, strict=True))
        ):
            return known[1]
        if len(self._slices_by_arch) >= KNOWN_SLICES:
            self._slices_by_arch.clear()
        mapped, start = {}, 0
        for plan in plans:
            if plan.chain:
                mapped[start + DEPTHWISE] = plan.kernel_shape
            start += len(plan.weights)
        slices = Slices(
            [w for plan in plans for w in plan.weights],
            [r for plan in plans for r in plan.regions],
            mapped,
            KernelTransforms([plan.chain for plan in plans if plan.chain]),
        )
        self._slices_by_arch[key] = (tuple(plans), slices)
        return slices

    def _apply(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        out = super()._apply(*args, **kwargs)
        self._slices_by_arch.clear()  # .to / .half: the layouts hold the old weights
        return out

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())  # slice layouts are rebuilt, not pickled
        state["_slices_by_arch"] = {}
        return state

    @torch.no_grad()
    def export_subnet(self, arch: Mapping[str, Any] | None = None) -> MobileNetV3Net:
        """A standalone static copy of `arch` (default: the active one); the active arch stays.

        The copy holds plain `Conv2d`/`BatchNorm2d`/`Linear` layers with the sliced, kernel-
        transformed weights and the BatchNorm statistics, in the supernet's train/eval mode.
        """
        previous = self.active_arch
        self.set_active(previous if arch is None else arch)
        try:
            net = MobileNetV3Net(
                copy.deepcopy(self.stem),
                copy.deepcopy(self.first_block),
                [block.to_static() for block in self._active_blocks],
                copy.deepcopy(self.head),
            )
        finally:
            self.set_active(previous)
        return net.train(self.training)

    @torch.no_grad()
    def sort_channels(self, expand_stage: int = 0) -> None:
        """OFA's channel re-sorting of every elastic block (see `ElasticMBConv.sort_channels`).

        Call it before training smaller expansion ratios; the largest subnet's function does
        not change, and optimizer momentum buffers should be cleared afterwards.
        """
        for block in self.modules():
            if isinstance(block, ElasticMBConv):
                block.sort_channels(expand_stage)

    # --- analytic cost ---------------------------------------------------------------------------
    def macs(self, arch: Mapping[str, Any]) -> int:
        """Conv + linear multiply-accumulates of one image at `arch["resolution"]`."""
        return mobilenetv3_cost(self.layout, self.space.arch(arch))[0]

    def params(self, arch: Mapping[str, Any]) -> int:
        """Parameters of the exported subnet, BatchNorm affine parameters included."""
        return mobilenetv3_cost(self.layout, self.space.arch(arch))[1]

    def latency_parts(self, arch: Mapping[str, Any]) -> list[LatencyPart]:
        """The separately timed parts of `arch` for a latency lookup table (see `parts`)."""
        return mobilenetv3_parts(self.layout, self.space.arch(arch), self._config["dropout"])
