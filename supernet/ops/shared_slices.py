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
    return Region(tuple(param.shape), tuple(param.stride()), tuple(size), offset)


def _view(t: torch.Tensor, r: Region) -> torch.Tensor:
    """The region of `t` (a tensor laid out like the weight the region was made for)."""
    return t.as_strided(r.size, r.stride, t.storage_offset() + r.offset)


class _Take(torch.autograd.Function):
    """`params[i]` sliced by `regions[i]` for every i, with one batched backward.

    A slice that is not contiguous (`weight[:, :in]`) is copied once here: a convolution would
    otherwise copy it in its forward and again in its backward.
    """

    @staticmethod
    def forward(ctx: Any, regions: tuple[Region, ...], *params: torch.Tensor) -> Any:
        ctx.set_materialize_grads(False)
        ctx.regions, ctx.params = regions, params
        views = (_view(p, r) for p, r in zip(params, regions, strict=True))
        return tuple(v if v.is_contiguous() else v.contiguous() for v in views)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, *grads: torch.Tensor | None) -> Any:
        outs: list[torch.Tensor | None] = [None] * len(grads)
        targets: list[torch.Tensor] = []
        sources: list[torch.Tensor] = []
        fresh: list[tuple[int, torch.Tensor]] = []
        direct = _accumulates_directly(ctx)
        for i, g in enumerate(grads):
            if g is None:
                continue
            target = _grad_region(ctx.params[i], ctx.regions[i]) if direct[i] else None
            if target is None:
                fresh.append((i, g))
            else:
                targets.append(target)
                sources.append(g)
        if targets:  # the weights' existing gradients gain the slices', nothing else moves
            torch._foreach_add_(targets, sources)
        if fresh:
            p0 = ctx.params[fresh[0][0]]
            sizes = [ctx.params[i].numel() for i, _ in fresh]
            buffer = torch.zeros(sum(sizes), dtype=p0.dtype, device=p0.device)
            targets, base = [], 0
            for (i, _), n in zip(fresh, sizes, strict=True):
                r = ctx.regions[i]
                outs[i] = buffer.as_strided(r.shape, r.stride, base)
                targets.append(buffer.as_strided(r.size, r.stride, base + r.offset))
                base += n
            torch._foreach_copy_(targets, [g for _, g in fresh])
        return (None, *outs)


def _accumulates_directly(ctx: Any) -> list[bool]:
    """Per weight: may its slice's gradient go straight into its existing `.grad`?

    Only when this backward would accumulate into `.grad` anyway (`loss.backward()`, not
    `torch.autograd.grad` or `inputs=` leaving the weight out), with no graph being built
    for the gradient, no hooks on the weight and no distributed gradient reduction (whose
    hooks must see every accumulation). Then adding the slice in place is exactly what
    accumulating a zero-padded full-size gradient would do, without writing the zeros.
    """
    no = [False] * len(ctx.params)
    if torch.is_grad_enabled() or (dist.is_available() and dist.is_initialized()):
        return no
    out = []
    for p, (node, _) in zip(ctx.params, ctx.next_functions, strict=True):
        try:
            runs = node is not None and torch._C._will_engine_execute_node(node)
        except RuntimeError:  # inside torch.autograd.grad: .grad is not touched
            return no
        out.append(bool(runs) and not p._backward_hooks and not p._post_accumulate_grad_hooks)
    return out


def _grad_region(param: torch.Tensor, r: Region) -> torch.Tensor | None:
    """The slice's part of `param.grad` as a view, or None when there is no usable `.grad`."""
    grad = param.grad
    if (
        grad is None
        or grad.is_sparse
        or grad.requires_grad
        or grad.dtype != param.dtype
        or grad.shape != r.shape
        or grad.stride() != r.stride
    ):
        return None
    return _view(grad, r)


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
