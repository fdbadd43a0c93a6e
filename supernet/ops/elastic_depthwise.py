"""Depthwise convolution with elastic width and OFA's elastic kernel size.

Only the largest kernel is stored. A smaller kernel is derived step by step (7 → 5 → 3): the
centre crop of the previous kernel goes through a learned `k² × k²` matrix, one per step and
per layer, shared by all channels and initialised to the identity (Once-for-All, §3.2). The
matrices let a centre crop serve as a small kernel without forcing the large kernel's centre
to be what the small kernel needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from supernet.ops.shared_slices import mapped_product

Chain = tuple[tuple[int, int, torch.Tensor], ...]  # (src size, dst size, transform) per step


class ElasticDepthwiseConv2d(nn.Module):
    """Depthwise `k × k` convolution with `k` from `kernel_sizes` and any width up to `channels`.

    The width is read from the input; the kernel size is set with `set_active`. Padding is
    `k // 2` ("same" for stride 1).

    Args:
        channels: largest width.
        kernel_sizes: odd kernel sizes; the largest one is stored.
        stride: spatial stride.
    """

    def __init__(self, channels: int, kernel_sizes: Sequence[int], stride: int = 1) -> None:
        super().__init__()
        sizes = tuple(sorted({int(k) for k in kernel_sizes}))
        if not sizes or any(k <= 0 or k % 2 == 0 for k in sizes):
            raise ValueError(
                f"kernel sizes must be positive odd integers, got {list(kernel_sizes)}"
            )
        self.channels = channels
        self.kernel_sizes = sizes
        self.max_kernel = sizes[-1]
        self.stride = stride
        self.weight = nn.Parameter(torch.empty(channels, 1, self.max_kernel, self.max_kernel))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        # transform[f"{src}to{dst}"] maps a centre-cropped src kernel to a dst kernel
        self.transform = nn.ParameterDict(
            {
                f"{src}to{dst}": nn.Parameter(torch.eye(dst * dst))
                for dst, src in zip(sizes, sizes[1:], strict=False)
            }
        )
        self.active_kernel = self.max_kernel

    def set_active(self, kernel_size: int) -> None:
        """Choose the active kernel size."""
        if kernel_size not in self.kernel_sizes:
            raise ValueError(f"kernel size {kernel_size} is not one of {list(self.kernel_sizes)}")
        self.active_kernel = kernel_size

    def weight_index(self, channels: int) -> tuple[slice, ...] | None:
        """The stored kernels the active one is made from: the first `channels` (None: all).

        Whole stored kernels, not their centre: the transform matrix reads the centre itself
        (`kernel_matrix`), so the slice stays contiguous and is never copied.
        """
        return None if channels == self.channels else (slice(0, channels),)

    def transform_sizes(self) -> list[int]:
        """Kernel sizes the active kernel passes through below the stored one (7 → 5 → 3)."""
        return [k for k in reversed(self.kernel_sizes[:-1]) if k >= self.active_kernel]

    def transform_chain(self) -> Chain:
        """The steps `(src, dst, matrix)` from the stored kernel to the active one."""
        chain, src = [], self.max_kernel
        for dst in self.transform_sizes():
            chain.append((src, dst, self.transform[f"{src}to{dst}"]))
            src = dst
        return tuple(chain)

    def kernel_matrix(self, chain: Chain | None = None) -> torch.Tensor | None:
        """`P` with `vec(active kernel) = P @ vec(stored kernel)` (None for the stored size).

        The chain "centre crop, then transform" of every step is one linear map of the stored
        kernel, so it is composed once over the small matrices and applied to all channels in
        a single product: `P = T_first`, then `P ← T_src→dst @ P[centre rows]`, and last `P`'s
        columns spread over the stored kernel's centre (zero elsewhere).
        """
        return kernel_matrices([self.transform_chain() if chain is None else chain])[0]

    def kernel_from(
        self, stored: torch.Tensor, matrix: torch.Tensor | None | str = "compute"
    ) -> torch.Tensor:
        """The active kernel of every channel in `stored` (whole leading kernels of `weight`).

        `matrix`: this conv's `kernel_matrix()` when the caller has it (`kernel_matrices`).
        """
        if isinstance(matrix, str):
            matrix = self.kernel_matrix()
        if matrix is None:
            return stored
        k, channels = self.active_kernel, stored.shape[0]
        return mapped_product(stored.reshape(channels, -1), matrix).reshape(channels, 1, k, k)

    def active_weight(self, channels: int) -> torch.Tensor:
        """The `(channels, 1, k, k)` kernel of the active size for the first `channels`."""
        index = self.weight_index(channels)
        return self.kernel_from(self.weight if index is None else self.weight[index])

    def conv(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The depthwise convolution with an active kernel `weight`."""
        k = weight.shape[-1]
        return F.conv2d(x, weight, None, self.stride, k // 2, 1, weight.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x, self.active_weight(x.shape[1]))

    @torch.no_grad()
    def to_static(self, channels: int) -> nn.Conv2d:
        """A plain depthwise `nn.Conv2d` holding the active (transformed) kernel."""
        k = self.active_kernel
        out = nn.Conv2d(channels, channels, k, self.stride, k // 2, groups=channels, bias=False)
        out.to(device=self.weight.device, dtype=self.weight.dtype)
        out.weight.copy_(self.active_weight(channels))
        return out

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, kernel_sizes={list(self.kernel_sizes)}, "
            f"stride={self.stride}, active_kernel={self.active_kernel}"
        )


def kernel_matrices(chains: Sequence[Chain]) -> list[torch.Tensor | None]:
    """`kernel_matrix()` for each transform chain (None for an empty one), with autograd.

    Chains of the same steps are stacked and composed at once (`KernelTransforms.compute`),
    so a network pays a few launches for its kernel transforms instead of a few per layer.
    """
    out: list[torch.Tensor | None] = [None] * len(chains)
    used = [i for i, chain in enumerate(chains) if chain]
    if used:
        source = KernelTransforms([chains[i] for i in used])
        matrices, _ = source.compute(source.inputs)
        for i, m in zip(used, matrices, strict=True):
            out[i] = m
    return out


class KernelTransforms:
    """The kernel matrices of many depthwise convs, as the slice node's `MatrixSource`.

    `compute` composes the matrices, chains of the same steps stacked (with autograd where it
    is on: `kernel_matrices`); inside the slice node it runs without, and `gradients` works the
    gradient out by hand (per step `P = T @ C`, with `C` the centre rows of the previous `P`:
    `dT = dP @ C.T`, `dC = T.T @ dP`): a training step pays a few batched products for its
    kernel transforms and no graph nodes for them.

    Args:
        chains: one non-empty transform chain per mapped slice, in the slices' order.
    """

    def __init__(self, chains: Sequence[Chain]) -> None:
        inputs: list[torch.Tensor] = []
        position: dict[int, int] = {}

        def index(t: torch.Tensor) -> int:
            if id(t) not in position:
                position[id(t)] = len(inputs)
                inputs.append(t)
            return position[id(t)]

        groups: dict[tuple[tuple[int, int], ...], list[int]] = {}
        for k, chain in enumerate(chains):
            if not chain:
                raise ValueError("a kernel transform chain has at least one step")
            groups.setdefault(tuple((src, dst) for src, dst, _ in chain), []).append(k)
        self.groups = [
            (steps, members, [[index(chains[k][j][2]) for k in members] for j in range(len(steps))])
            for steps, members in groups.items()
        ]  # fmt: skip
        self.inputs = tuple(inputs)
        self.count = len(chains)

    def compute(self, inputs: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], Any]:
        out: list[torch.Tensor | None] = [None] * self.count
        saved = []
        for steps, members, index in self.groups:
            ts = [torch.stack([inputs[i] for i in step]) for step in index]
            matrix, crops = ts[0], []
            for (src, dst), t in zip(steps[1:], ts[1:], strict=True):
                crops.append(matrix.index_select(1, _centre(src, dst, t.device)))
                matrix = torch.bmm(t, crops[-1])
            stored, first = steps[0]
            spread = matrix.new_zeros((*matrix.shape[:-1], stored * stored))
            spread = spread.index_copy(2, _centre(stored, first, matrix.device), matrix)
            for k, m in zip(members, spread.unbind(0), strict=True):
                out[k] = m
            saved.append((ts, crops))
        return out, saved  # type: ignore[return-value]

    def gradients(
        self, saved: Any, grads: Sequence[torch.Tensor | None]
    ) -> list[torch.Tensor | None]:
        out: list[torch.Tensor | None] = [None] * len(self.inputs)
        for (steps, members, index), (ts, crops) in zip(self.groups, saved, strict=True):
            given = [grads[k] for k in members]
            if all(g is None for g in given):
                continue
            zero = next(g for g in given if g is not None)
            dm = torch.stack([torch.zeros_like(zero) if g is None else g for g in given])
            stored, first = steps[0]
            dp = dm.index_select(2, _centre(stored, first, dm.device))
            for j in range(len(steps) - 1, 0, -1):
                src, dst = steps[j]
                crop = crops[j - 1]
                _add(out, index[j], torch.bmm(dp, crop.transpose(1, 2)))
                dcrop = torch.bmm(ts[j].transpose(1, 2), dp)
                dp = dcrop.new_zeros((dcrop.shape[0], src * src, dcrop.shape[2]))
                dp.index_copy_(1, _centre(src, dst, dp.device), dcrop)
            _add(out, index[0], dp)
        return out


def _add(out: list[torch.Tensor | None], index: list[int], grads: torch.Tensor) -> None:
    for i, g in zip(index, grads.unbind(0), strict=True):
        known = out[i]
        out[i] = g if known is None else known + g


@cache
def _centre(src: int, dst: int, device: torch.device) -> torch.Tensor:
    """Flat positions of the centre `dst × dst` crop of a `src × src` kernel."""
    start = (src - dst) // 2
    rows = torch.arange(start, start + dst)
    with torch.inference_mode(False):  # usable in autograd even when first built in inference
        return (rows[:, None] * src + rows[None, :]).flatten().to(device)
