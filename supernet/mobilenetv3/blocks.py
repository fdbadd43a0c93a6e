"""The elastic MBConv block: elastic kernel size and expansion ratio over shared weights."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from supernet.mobilenetv3.layout import BlockLayout
from supernet.mobilenetv3.static import MBConvBlock, activation
from supernet.ops.channels import make_divisible
from supernet.ops.elastic_batchnorm import (
    ElasticBatchNorm2d,
    batch_norm,
    count_batches,
    static_batchnorm,
)
from supernet.ops.elastic_depthwise import Chain, ElasticDepthwiseConv2d
from supernet.ops.elastic_pointwise import ElasticPointwiseConv2d
from supernet.ops.elastic_se import ElasticSqueezeExcite, excite
from supernet.ops.shared_slices import Index, Mapped, Region, region, take

ACTIVATION_FNS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "hswish": F.hardswish,
}
CUDNN = torch.backends.cudnn
_assign = object.__setattr__
DEPTHWISE = 3  # position of the depthwise kernel in `shared_weights()`


def _after_load(module: ElasticMBConv, incompatible: object) -> None:
    module._forget_plans()  # load_state_dict(assign=True) may have replaced the weights


class BlockPlan(NamedTuple):
    """The active subnet's view of a block: stored weights, their slices, kernel transforms
    (and the active kernel's shape), and per BatchNorm the leading slices of its running
    statistics (None for a BatchNorm without them, which takes the general path)."""

    weights: list[torch.Tensor]
    regions: list[Region | None]
    chain: Chain
    kernel_shape: tuple[int, ...]
    norms: tuple[nn.BatchNorm2d, ...]
    stats: tuple[tuple[torch.Tensor, torch.Tensor] | None, ...]
    stride: int


def _norm_stats(bn: nn.BatchNorm2d, channels: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    mean, var = bn.running_mean, bn.running_var
    if mean is None or var is None or not bn.track_running_stats:
        return None
    return mean[:channels], var[:channels]


def hidden_width(in_channels: int, expand_ratio: float) -> int:
    """Width of the expanded (depthwise) layer for this input width and ratio (OFA)."""
    return make_divisible(round(in_channels * expand_ratio), 8)


class ElasticMBConv(nn.Module):
    """An MBConv block whose subnets use the first `hidden` expanded channels and a `k×k` kernel.

    The expansion, depthwise and SE weights are leading slices of the largest ones; the
    kernel comes from the depthwise op's transform chain. Input and output widths, stride
    and residual are fixed by the layout.

    Two ways to run it: `forward(x)` lets each elastic op slice its own weights (the
    reference), `forward(x, weights)` runs the same computation functionally on weights the
    supernet has taken for all its blocks at once (the `plan()` of each: stored weights and
    their slices, worked out once per kernel and width; `mapped` adds the kernel transform);
    without gradients the taken weights are cached until the arch or a weight changes
    (`cached_weights`).

    Args:
        layout: widths, stride, activation and SE of the block.
        kernel_sizes: kernel size choices.
        expand_ratios: expansion ratio choices.
    """

    def __init__(
        self, layout: BlockLayout, kernel_sizes: Sequence[int], expand_ratios: Sequence[int]
    ) -> None:
        super().__init__()
        self.layout = layout
        self.hidden_by_ratio = {e: hidden_width(layout.in_channels, e) for e in expand_ratios}
        hidden = max(self.hidden_by_ratio.values())
        self.max_hidden = hidden
        self.expand_conv = ElasticPointwiseConv2d(layout.in_channels, hidden)
        self.expand_bn = ElasticBatchNorm2d(hidden)
        self.depthwise = ElasticDepthwiseConv2d(hidden, kernel_sizes, layout.stride)
        self.depthwise_bn = ElasticBatchNorm2d(hidden)
        self.se = ElasticSqueezeExcite(hidden) if layout.se else None
        self.project = ElasticPointwiseConv2d(hidden, layout.out_channels)
        self.project_bn = nn.BatchNorm2d(layout.out_channels)
        self.act = activation(layout.act)
        self.act_fn = ACTIVATION_FNS[layout.act]
        self.residual = layout.residual
        self.active_hidden = hidden
        self._active = (self.depthwise.active_kernel, hidden)
        self._plans: dict[tuple[int, int], BlockPlan] = {}
        self._plan = self._make_plan()
        self._cache: tuple[tuple[int, ...], list[torch.Tensor]] | None = None
        self.register_load_state_dict_post_hook(_after_load)

    def set_active(self, kernel_size: int, expand_ratio: int) -> None:
        """Choose the kernel size and expansion ratio the block runs with."""
        hidden = self.hidden_by_ratio[expand_ratio]
        key = (kernel_size, hidden)
        expand_conv, depthwise = self.expand_conv, self.depthwise
        if (
            key == self._active
            and depthwise.active_kernel == kernel_size
            and expand_conv.active_out == hidden
        ):
            return
        expand_conv.set_active(hidden)
        depthwise.set_active(kernel_size)
        plan = self._plans.get(key)
        # plain attributes, set past nn.Module.__setattr__ (called for every block and subnet)
        _assign(self, "active_hidden", hidden)
        _assign(self, "_active", key)
        _assign(self, "_plan", self._make_plan() if plan is None else plan)
        _assign(self, "_cache", None)

    # --- shared weights ----------------------------------------------------------------------
    def shared_weights(self) -> list[torch.Tensor]:
        """Every stored weight the block reads, in the order `run` takes them."""
        se = list(self.se.weights()) if self.se is not None else []
        return [
            self.expand_conv.weight, self.expand_bn.weight, self.expand_bn.bias,
            self.depthwise.weight, self.depthwise_bn.weight, self.depthwise_bn.bias,
            *se, self.project.weight, self.project_bn.weight, self.project_bn.bias,
        ]  # fmt: skip

    def weight_indices(self) -> list[Index | None]:
        """The active slice of each of `shared_weights()` (None: the whole weight)."""
        h = self.active_hidden
        lead = None if h == self.max_hidden else (slice(0, h),)
        se = self.se.weight_indices(h) if self.se is not None else []
        return [
            self.expand_conv.weight_index(self.layout.in_channels), lead, lead,
            self.depthwise.weight_index(h), lead, lead,
            *se, self.project.weight_index(h), None, None,
        ]  # fmt: skip

    def plan(self) -> BlockPlan:
        """What the active subnet reads, worked out once per (kernel, width) and kept."""
        return self._plan

    def _make_plan(self) -> BlockPlan:
        weights = self.shared_weights()
        regions = [region(w, i) for w, i in zip(weights, self.weight_indices(), strict=True)]
        norms = (self.expand_bn, self.depthwise_bn, self.project_bn)
        widths = (self.active_hidden, self.active_hidden, self.layout.out_channels)
        stats = tuple(_norm_stats(bn, c) for bn, c in zip(norms, widths, strict=True))
        chain = self.depthwise.transform_chain()
        k = self.depthwise.active_kernel
        plan = BlockPlan(
            weights, regions, chain, (self.active_hidden, 1, k, k), norms, stats,
            self.layout.stride,
        )  # fmt: skip
        self._plans[(self.depthwise.active_kernel, self.active_hidden)] = plan
        return plan

    def _forget_plans(self) -> None:
        """Weights were replaced or moved: plans and cached weights refer to the old ones."""
        self._plans.clear()
        self._cache = None
        self._plan = self._make_plan()

    def mapped(self, matrix: torch.Tensor | None | str = "compute") -> dict[int, Mapped]:
        """How `take` derives the active depthwise kernel from the stored one (none at 7×7).

        `matrix`: the depthwise `kernel_matrix()`, when the caller computed it already.
        """
        if isinstance(matrix, str):
            matrix = self.depthwise.kernel_matrix(self._plan.chain)
        return {} if matrix is None else {DEPTHWISE: Mapped(matrix, self._plan.kernel_shape)}

    def active_weights(self) -> list[torch.Tensor]:
        """This block's weights for `run`, taken on their own (one graph node)."""
        return take(self._plan.weights, self._plan.regions, self.mapped())

    def _weights_version(self) -> tuple[int, ...]:
        stored = [*self._plan.weights, *(t for _, _, t in self._plan.chain)]
        return (*(p._version for p in stored), stored[0].data_ptr())

    def cached_weights(self) -> list[torch.Tensor]:
        """The taken weights, computed once per arch while no weight changes (no grad).

        Changes are seen through the weights' version counters (optimizer steps,
        `load_state_dict`, `copy_`) and their storage (`.to`); writes through `.data` are not:
        call `set_active` after those.
        """
        version = self._weights_version()
        if self._cache is None or self._cache[0] != version:
            with torch.no_grad():
                weights = [w.contiguous() for w in self.active_weights()]
            self._cache = (version, weights)
        return self._cache[1]

    # --- running -------------------------------------------------------------------------------
    def run(
        self, x: torch.Tensor, weights: Sequence[torch.Tensor], counted: bool = False
    ) -> torch.Tensor:
        """The block on explicit weights: functional ops only, no slicing, no submodule calls.

        `counted`: the caller has advanced the BatchNorm batch counters (`count_batches`).
        """
        ew, ebw, ebb, dw, dbw, dbb, *rest = weights
        se, (pw, pbw, pbb) = rest[:-3], rest[-3:]
        plan, act = self._plan, self.act_fn
        if not counted:
            count_batches(list(plan.norms))

        def norm(i: int, h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            stats, bn = plan.stats[i], plan.norms[i]
            momentum = bn.momentum
            if stats is None or momentum is None:  # the general path (cumulative averages...)
                return batch_norm(bn, h, w, b, counted=True)
            training = bn.training
            if training and h.shape[0] * h.shape[2] * h.shape[3] == 1:
                raise ValueError(
                    f"Expected more than 1 value per channel when training, got {list(h.shape)}"
                )
            mean, var = stats
            return torch.batch_norm(h, w, b, mean, var, training, momentum, bn.eps, CUDNN.enabled)

        k = dw.shape[-1]
        h = act(norm(0, torch.conv2d(x, ew), ebw, ebb))
        h = act(norm(1, torch.conv2d(h, dw, None, plan.stride, k // 2, 1, dw.shape[0]), dbw, dbb))
        if se:
            h = excite(h, *se)
        h = norm(2, torch.conv2d(h, pw), pbw, pbb)
        return h + x if self.residual else h

    def forward(
        self,
        x: torch.Tensor,
        weights: Sequence[torch.Tensor] | None = None,
        counted: bool = False,
    ) -> torch.Tensor:
        if weights is not None:
            return self.run(x, weights, counted)
        h = self.act(self.expand_bn(self.expand_conv(x)))
        h = self.act(self.depthwise_bn(self.depthwise(h)))
        if self.se is not None:
            h = self.se(h)
        h = self.project_bn(self.project(h))
        return h + x if self.residual else h

    def _apply(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        out = super()._apply(*args, **kwargs)
        self._forget_plans()  # .to / .half / memory format: new storage, maybe new strides
        return out

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())  # plans and cache are rebuilt, not pickled
        state.update(_plans={}, _cache=None, _plan=None)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._plan = self._make_plan()

    @torch.no_grad()
    def to_static(self) -> MBConvBlock:
        """A plain `MBConvBlock` with copies of the active weights and BN statistics."""
        hidden, act = self.active_hidden, self.layout.act
        index = torch.arange(hidden, device=self.project.weight.device)
        all_out = torch.arange(self.layout.out_channels, device=index.device)
        return MBConvBlock(
            nn.Sequential(
                self.expand_conv.to_static(self.layout.in_channels),
                static_batchnorm(self.expand_bn, index),
                activation(act),
            ),
            nn.Sequential(
                self.depthwise.to_static(hidden),
                static_batchnorm(self.depthwise_bn, index),
                activation(act),
            ),
            None if self.se is None else self.se.to_static(hidden),
            nn.Sequential(
                self.project.to_static(hidden), static_batchnorm(self.project_bn, all_out)
            ),
            residual=self.residual,
        ).train(self.training)

    @torch.no_grad()
    def sort_channels(self, expand_stage: int = 0) -> None:
        """Re-sort the expanded channels by importance (L1 norm of their projection weights).

        The same permutation is applied to the expansion conv and BN, the depthwise conv and
        BN, the SE and the projection, so the largest block computes the same function.
        With `expand_stage = s > 0` (OFA's progressive shrinking) the channels of the `s`
        next-smaller widths, already trained, stay in front of the wider ones: sorting only
        happens within each band between consecutive widths.
        """
        importance = self.project.weight.abs().sum(dim=(0, 2, 3)).cpu().numpy()
        widths = sorted(set(self.hidden_by_ratio.values()), reverse=True)
        bounds = np.array(widths[1 : 1 + expand_stage], dtype=np.int64)
        band = (np.arange(self.max_hidden)[:, None] >= bounds[None, :]).sum(axis=1)
        order_np = np.lexsort((-importance, band))  # by band, then importance descending
        order = torch.as_tensor(order_np, device=self.project.weight.device)
        self.expand_conv.weight.copy_(self.expand_conv.weight[order])
        self.expand_bn.permute_(order)
        self.depthwise.weight.copy_(self.depthwise.weight[order])
        self.depthwise_bn.permute_(order)
        if self.se is not None:
            self.se.permute_(order)
        self.project.weight.copy_(self.project.weight[:, order])

    def extra_repr(self) -> str:
        return f"{self.layout.name}: active_hidden={self.active_hidden}, residual={self.residual}"
