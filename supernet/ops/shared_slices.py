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

A slice may also be `Mapped`: its rows, flattened, times a matrix (how a depthwise kernel of a
smaller size comes out of the centre of the stored largest one). The product runs inside the
same node and its gradient joins the others' multi-tensor add: a derived kernel costs one small
product forward and two backward, and no autograd nodes of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


class Mapped(NamedTuple):
    """A taken slice replaced by `slice.reshape(rows, -1) @ matrix.T`, viewed as `shape`.

    `matrix` is `(m, k)` with `k` the elements of the slice per leading index; `shape` holds
    `rows * m` elements.
    """

    matrix: torch.Tensor
    shape: tuple[int, ...]


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
    return _region(param, tuple(size), offset)


def _region(param: torch.Tensor, size: tuple[int, ...], offset: int) -> Region:
    view = param.detach().as_strided(size, param.stride(), param.storage_offset() + offset)
    dense = torch.empty(size, device="meta").stride()
    return Region(
        tuple(param.shape), tuple(param.stride()), size, offset, view.is_contiguous(),
        view.numel(), tuple(dense),
    )  # fmt: skip


def _view(t: torch.Tensor, r: Region) -> torch.Tensor:
    """The region of `t` (a tensor laid out like the weight the region was made for)."""
    return t.as_strided(r.size, r.stride, t.storage_offset() + r.offset)


def _rows(t: torch.Tensor) -> torch.Tensor:
    """A slice as a matrix, one row per leading index (a view where it is contiguous)."""
    return t.reshape(t.shape[0], -1)


class _Take(torch.autograd.Function):
    """`params[i]` sliced by `regions[i]` for every i, with one batched backward.

    A slice that is not contiguous (`weight[:, :in]`) comes out as a contiguous copy (all of
    them copied at once): a convolution would otherwise copy it in its forward and again in its
    backward. `maps` lists `(i, shape)` for the mapped slices; their matrices follow the params
    among the inputs, in the same order.
    """

    @staticmethod
    def forward(
        ctx: Any,
        regions: tuple[Region, ...],
        maps: tuple[tuple[int, tuple[int, ...]], ...],
        *tensors: torch.Tensor,
    ) -> Any:
        ctx.set_materialize_grads(False)
        n = len(regions)
        params, matrices = tensors[:n], tensors[n:]
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
        dense = []
        for (i, shape), matrix in zip(maps, matrices, strict=True):
            dense.append(outs[i])
            outs[i] = torch.mm(_rows(outs[i]), matrix.t()).view(shape)
        ctx.regions, ctx.maps, ctx.params, ctx.matrices = regions, maps, params, matrices
        ctx.dense = dense  # the mapped slices as the products read them
        return tuple(outs)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, *grads: torch.Tensor | None) -> Any:
        params, regions, n = ctx.params, ctx.regions, len(ctx.params)
        outs: list[torch.Tensor | None] = [None] * (n + len(ctx.matrices))
        grads_in = list(grads)
        for k, ((i, _), matrix) in enumerate(zip(ctx.maps, ctx.matrices, strict=True)):
            g = grads[i]
            if g is None:
                continue
            p, r = params[i], regions[i]
            g2 = g.reshape(r.size[0], -1).to(p.dtype)
            grads_in[i] = torch.mm(g2, matrix.to(p.dtype)).view(r.size)  # the slice's gradient
            if ctx.needs_input_grad[2 + n + k]:
                outs[n + k] = torch.mm(g2.t(), _rows(ctx.dense[k]).to(p.dtype)).to(matrix.dtype)
        targets: list[torch.Tensor] = []
        sources: list[torch.Tensor] = []
        fresh: list[int] = []
        nodes = ctx.next_functions
        if _may_accumulate_directly():
            for i in range(n):
                g = grads_in[i]
                if g is None:
                    continue
                target = _grad_region(params[i], regions[i], nodes[i][0])
                if target is None:
                    fresh.append(i)
                else:
                    targets.append(target)
                    sources.append(g)
        else:
            fresh = [i for i in range(n) if grads_in[i] is not None]
        if targets:  # the weights' existing gradients gain the slices', nothing else moves
            torch._foreach_add_(targets, sources)
        if fresh:
            p0 = params[fresh[0]]
            buffer = p0.new_zeros(sum(params[i].numel() for i in fresh))
            targets, sources, base = [], [], 0
            for i in fresh:
                r = regions[i]
                outs[i] = buffer.as_strided(r.shape, r.stride, base)
                targets.append(buffer.as_strided(r.size, r.stride, base + r.offset))
                sources.append(grads_in[i])  # type: ignore[arg-type]
                base += params[i].numel()
            torch._foreach_copy_(targets, sources)
        return (None, None, *outs)


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


def take(
    params: Sequence[torch.Tensor],
    regions: Sequence[Region | None],
    mapped: Mapping[int, Mapped] | None = None,
) -> list[torch.Tensor]:
    """Every `params[i]` sliced by `regions[i]` (whole where None), as one graph node.

    `mapped[i]`, where given, turns slice i into its rows times a matrix (see `Mapped`).
    Without gradients (inference, `torch.no_grad`) the slices are plain views.
    """
    mapped = mapped or {}
    out: list[torch.Tensor] = list(params)
    chosen: dict[int, Region] = {}
    for i, r in enumerate(regions):
        if r is not None:
            chosen[i] = r
        elif i in mapped:
            p = params[i]
            chosen[i] = _region(p, tuple(p.shape), 0)
    if not chosen:
        return out
    grad = torch.is_grad_enabled() and (
        any(params[i].requires_grad for i in chosen)
        or any(m.matrix.requires_grad for m in mapped.values())
    )
    if not grad:
        for i, r in chosen.items():
            out[i] = _view(params[i], r)
        for i, m in mapped.items():
            out[i] = torch.mm(_rows(out[i]), m.matrix.t()).view(m.shape)
        return out
    by_kind: dict[tuple[torch.dtype, torch.device], list[int]] = {}
    for i in chosen:
        p = params[i]
        by_kind.setdefault((p.dtype, p.device), []).append(i)
    for members in by_kind.values():
        maps = tuple((j, mapped[i].shape) for j, i in enumerate(members) if i in mapped)
        matrices = [mapped[members[j]].matrix for j, _ in maps]
        parts = _Take.apply(
            tuple(chosen[i] for i in members), maps, *(params[i] for i in members), *matrices
        )
        for i, part in zip(members, parts, strict=True):
            out[i] = part
    return out
