"""Slices of shared weights taken in one autograd node, so weight sharing costs few launches.

A weight-sharing subnet reads leading slices of the stored weights. Sliced one at a time,
every slice adds an autograd node whose backward allocates a zero tensor of the full weight and
copies the slice's gradient into it: two kernel launches and a Python call per weight per
subnet, which on a GPU cost more than the small convolutions themselves, and a full-size
zero fill per weight, which on a CPU costs more than a small subnet's whole backward pass.

`take` slices any number of weights in one node. Its backward adds every slice's gradient into
the weights' existing `.grad` in one multi-tensor add (the second and later subnets of a
sandwich step), or, where there is no `.grad` yet, writes the gradients into one zero-filled
buffer and hands each weight a full-size view of it laid out like the weight (so gradient
accumulation adopts it without a copy). Either way the gradients are exactly those of plain
slicing. Where the slice is decided once (a subnet's `set_active`), `region` precomputes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
from torch.autograd.function import once_differentiable

Index = tuple[slice, ...]


class Region(NamedTuple):
    """A slice of a dense weight as `as_strided` arguments (offset from the weight's start)."""

    shape: tuple[int, ...]  # of the whole weight
    stride: tuple[int, ...]  # of the whole weight
    size: tuple[int, ...]  # of the slice
    offset: int
    contiguous: bool  # whether the slice is (standard) contiguous as it is
    numel: int  # of the slice
    dense_stride: tuple[int, ...]  # of a contiguous tensor of the slice's size


def region(param: torch.Tensor, index: Index | None) -> Region | None:
    """`param[index]` as a `Region` (None when the index takes the whole weight).

    Raises ValueError for a weight that is not dense (contiguous or channels-last) or a slice
    with a step.
    """
    if index is None:
        return None
    if not (param.is_contiguous() or param.is_contiguous(memory_format=torch.channels_last)):
        raise ValueError("shared slices need dense weights (contiguous or channels-last)")
    size, offset = list(param.shape), 0
    for dim, s in enumerate(index):
        start, stop, step = s.indices(param.shape[dim])
        if step != 1:
            raise ValueError(f"shared slices have step 1, got {s}")
        size[dim] = max(stop - start, 0)
        offset += start * param.stride(dim)
    if tuple(size) == tuple(param.shape):
        return None
    view = param.detach().as_strided(size, param.stride(), param.storage_offset() + offset)
    dense = torch.empty(size, device="meta").stride()
    return Region(
        tuple(param.shape), tuple(param.stride()), tuple(size), offset, view.is_contiguous(),
        view.numel(), tuple(dense),
    )  # fmt: skip


def _view(t: torch.Tensor, r: Region) -> torch.Tensor:
    """The region of `t` (a tensor laid out like the weight the region was made for)."""
    return t.as_strided(r.size, r.stride, t.storage_offset() + r.offset)


class _Take(torch.autograd.Function):
    """`params[i]` sliced by `regions[i]` for every i, with one batched backward.

    A slice that is not contiguous (`weight[:, :in]`) comes out as a contiguous copy (all of
    them copied at once): a convolution would otherwise copy it in its forward and again in its
    backward.
    """

    @staticmethod
    def forward(ctx: Any, regions: tuple[Region, ...], *params: torch.Tensor) -> Any:
        ctx.set_materialize_grads(False)
        ctx.regions, ctx.params = regions, params
        outs = [
            p.as_strided(r.size, r.stride, p.storage_offset() + r.offset)
            for p, r in zip(params, regions, strict=True)
        ]
        strided = [i for i, r in enumerate(regions) if not r.contiguous]
        if strided:
            buffer = params[0].new_empty(sum(regions[i].numel for i in strided))
            copies, base = [], 0
            for i in strided:
                r = regions[i]
                copies.append(buffer.as_strided(r.size, r.dense_stride, base))
                base += r.numel
            torch._foreach_copy_(copies, [outs[i] for i in strided])
            for i, copy in zip(strided, copies, strict=True):
                outs[i] = copy
        return tuple(outs)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, *grads: torch.Tensor | None) -> Any:
        params, regions = ctx.params, ctx.regions
        outs: list[torch.Tensor | None] = [None] * len(grads)
        targets: list[torch.Tensor] = []
        sources: list[torch.Tensor] = []
        fresh: list[int] = []
        if _may_accumulate_directly():
            for i, (g, (node, _)) in enumerate(zip(grads, ctx.next_functions, strict=True)):
                if g is None:
                    continue
                target = _grad_region(params[i], regions[i], node)
                if target is None:
                    fresh.append(i)
                else:
                    targets.append(target)
                    sources.append(g)
        else:
            fresh = [i for i, g in enumerate(grads) if g is not None]
        if targets:  # the weights' existing gradients gain the slices', nothing else moves
            torch._foreach_add_(targets, sources)
        if fresh:
            p0 = params[fresh[0]]
            buffer = p0.new_zeros(sum(params[i].numel() for i in fresh))
            targets, base = [], 0
            for i in fresh:
                r = regions[i]
                outs[i] = buffer.as_strided(r.shape, r.stride, base)
                targets.append(buffer.as_strided(r.size, r.stride, base + r.offset))
                base += params[i].numel()
            torch._foreach_copy_(targets, [g for i in fresh if (g := grads[i]) is not None])
        return (None, *outs)


def _may_accumulate_directly() -> bool:
    """No graph is being built for the gradients and no distributed reduction is running."""
    return not torch.is_grad_enabled() and not (dist.is_available() and dist.is_initialized())


def _grad_region(param: torch.Tensor, r: Region, node: Any) -> torch.Tensor | None:
    """The slice's part of `param.grad` as a view, where its gradient may go straight there.

    Only when this backward would accumulate into `.grad` anyway (`loss.backward()`, not
    `torch.autograd.grad` or `inputs=` leaving the weight out), with no hooks on the weight and
    a `.grad` laid out like it (and, from `_may_accumulate_directly`, no graph being built for
    the gradient and no distributed reduction, whose hooks must see every accumulation). Then
    adding the slice in place is exactly what accumulating a zero-padded full-size gradient
    would do, without writing the zeros. None otherwise.
    """
    grad = param.grad
    if (
        grad is None
        or grad.layout != torch.strided
        or grad.dtype != param.dtype
        or grad.stride() != r.stride
        or grad.shape != r.shape
        or param._backward_hooks
        or param._post_accumulate_grad_hooks
    ):
        return None
    try:
        if node is None or not _will_run(node):
            return None
    except RuntimeError:  # inside torch.autograd.grad: .grad is not touched
        return None
    return grad.as_strided(r.size, r.stride, grad.storage_offset() + r.offset)


_will_run = torch._C._will_engine_execute_node


def take(params: Sequence[torch.Tensor], regions: Sequence[Region | None]) -> list[torch.Tensor]:
    """Every `params[i]` sliced by `regions[i]` (whole where None), as one graph node.

    Without gradients (inference, `torch.no_grad`) the slices are plain views.
    """
    out: list[torch.Tensor] = list(params)
    picked = [i for i, r in enumerate(regions) if r is not None]
    if not picked:
        return out
    grouped = [params[i] for i in picked]
    chosen: list[Region] = [regions[i] for i in picked]  # type: ignore[misc]
    if not (torch.is_grad_enabled() and any(p.requires_grad for p in grouped)):
        for i, p, r in zip(picked, grouped, chosen, strict=True):
            out[i] = _view(p, r)
        return out
    by_kind: dict[tuple[torch.dtype, torch.device], list[int]] = {}
    for j, p in enumerate(grouped):
        by_kind.setdefault((p.dtype, p.device), []).append(j)
    for members in by_kind.values():
        parts = _Take.apply(tuple(chosen[j] for j in members), *(grouped[j] for j in members))
        for j, part in zip(members, parts, strict=True):
            out[picked[j]] = part
    return out
