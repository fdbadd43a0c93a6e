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

A slice may also be mapped: its rows, flattened, times a matrix (how a depthwise kernel of a
smaller size comes out of the centre of the stored largest one). The matrices come from a
`MatrixSource` that runs inside the node too (the kernel transforms compose and differentiate
their matrices there by hand), and each product joins the node's copies and its gradient the
multi-tensor add: derived kernels cost a few small products and no autograd nodes of their own.
`Slices` works out once what only depends on which slices a subnet reads.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

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


def mapped_product(rows: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """`rows @ matrix.T`, computed as `(matrix @ rows.T).T` (a transposed view).

    With many rows (a layer's channels) and few columns (a small kernel's positions) the
    product vectorises over the rows this way: 2-3× faster on a CPU. Every path that derives
    a kernel goes through here, so they agree to the bit.
    """
    return torch.mm(matrix, rows.t()).t()


def _rows(t: torch.Tensor) -> torch.Tensor:
    """A slice as a matrix, one row per leading index (a view where it is contiguous)."""
    return t.reshape(t.shape[0], -1)


class MatrixSource(Protocol):
    """Where the matrices of the mapped slices come from, computed inside the slice node.

    `compute` runs without autograd and returns one matrix per mapped slice (in the order of
    their indices) and what `gradients` needs; `gradients` turns the matrices' gradients (None
    where a slice got none) into one gradient per tensor of `inputs` (None for none). So the
    matrices cost the slice node a few products and add no graph nodes of their own.
    """

    inputs: tuple[torch.Tensor, ...]

    def compute(self, inputs: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], Any]: ...

    def gradients(
        self, saved: Any, grads: Sequence[torch.Tensor | None]
    ) -> list[torch.Tensor | None]: ...


class GivenMatrices:
    """Matrices the caller computed (with autograd, where it needs their gradients)."""

    def __init__(self, matrices: Sequence[torch.Tensor]) -> None:
        self.inputs = tuple(matrices)

    def compute(self, inputs: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], Any]:
        return list(inputs), None

    def gradients(
        self, saved: Any, grads: Sequence[torch.Tensor | None]
    ) -> list[torch.Tensor | None]:
        return list(grads)


class _Layout:
    """What `_Take` needs about a fixed list of slices, worked out once: each slice's view,
    where the strided slices and the mapped products go in the one copy buffer, which slices
    are mapped (`(i, shape)`) and where their matrices come from."""

    def __init__(
        self,
        regions: Sequence[Region],
        maps: Sequence[tuple[int, tuple[int, ...]]],
        source: MatrixSource,
    ) -> None:
        self.regions = tuple(regions)
        self.maps = tuple(maps)
        self.source = source
        self.views = tuple((r.size, r.stride, r.offset) for r in regions)
        mapped = {i for i, _ in maps}
        self.strided = tuple(
            i for i, r in enumerate(regions) if not r.contiguous and i not in mapped
        )
        copies, base = [], 0
        for i in self.strided:
            r = regions[i]
            copies.append((r.size, r.dense_stride, base))
            base += r.numel
        for i, shape in maps:  # a product's rows, copied from its transposed view
            rows = regions[i].size[0]
            width = math.prod(shape) // rows
            copies.append(((rows, width), (width, 1), base))
            base += rows * width
        self.copies = tuple(copies)
        self.copy_numel = base
        whole = [_region(t, tuple(t.shape), 0) for t in source.inputs] if maps else []
        self.grad_views = tuple(
            (i, r.size, r.stride, r.offset, r.size == r.shape and r.offset == 0)
            for i, r in enumerate((*regions, *whole))
        )  # params, then the source's inputs: where each gradient goes in `.grad`


class _Take(torch.autograd.Function):
    """`params[i]` sliced by `layout.regions[i]` for every i, with one batched backward.

    A slice that is not contiguous (`weight[:, :in]`) comes out as a contiguous copy (all of
    them copied at once): a convolution would otherwise copy it in its forward and again in its
    backward. The inputs of `layout.source` follow the params; each mapped slice's product is
    computed transposed (`mapped_product`) and joins the copies.
    """

    @staticmethod
    def forward(ctx: Any, layout: _Layout, *tensors: torch.Tensor) -> Any:
        ctx.set_materialize_grads(False)
        n = len(layout.views)
        params = tensors[:n]
        outs = [
            p.as_strided(size, stride, p.storage_offset() + offset)
            for p, (size, stride, offset) in zip(params, layout.views, strict=True)
        ]
        dense = [_rows(outs[i]) for i, _ in layout.maps]  # the slices as the products read them
        matrices: list[torch.Tensor] = []
        saved, products = None, []
        if layout.maps:
            with _full_precision(params[0].device.type):  # the weights' dtype, as if stored
                matrices, saved = layout.source.compute(tensors[n:])
                products = [mapped_product(d, m) for m, d in zip(matrices, dense, strict=True)]
        if layout.copies:
            buffer = params[0].new_empty(layout.copy_numel)
            copies = [buffer.as_strided(size, stride, base) for size, stride, base in layout.copies]
            sources = [outs[i] for i in layout.strided] + products
            torch._foreach_copy_(copies, sources)
            for i, copy in zip(layout.strided, copies, strict=False):
                outs[i] = copy
            tail = copies[len(layout.strided) :]
            for (i, shape), copy in zip(layout.maps, tail, strict=True):
                outs[i] = copy.view(shape)
        ctx.layout, ctx.tensors, ctx.matrices, ctx.dense = layout, tensors, matrices, dense
        ctx.saved = saved
        return tuple(outs)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, *grads: torch.Tensor | None) -> Any:
        layout, tensors = ctx.layout, ctx.tensors
        n = len(layout.views)
        grads_in: list[torch.Tensor | None] = [*grads, *([None] * (len(tensors) - n))]
        source_grad = any(ctx.needs_input_grad[1 + n :])
        matrix_grads: list[torch.Tensor | None] = [None] * len(ctx.matrices)
        for k, ((i, _), matrix) in enumerate(zip(layout.maps, ctx.matrices, strict=True)):
            g = grads[i]
            if g is None:
                continue
            dtype, size = tensors[i].dtype, layout.regions[i].size
            g2 = _as(g.reshape(size[0], -1), dtype)
            grads_in[i] = torch.mm(g2, _as(matrix, dtype)).view(size)  # the slice's gradient
            if source_grad:
                matrix_grads[k] = _as(torch.mm(g2.t(), _as(ctx.dense[k], dtype)), matrix.dtype)
        if source_grad and any(g is not None for g in matrix_grads):
            inputs = layout.source.gradients(ctx.saved, matrix_grads)
            for j, g in enumerate(inputs):
                grads_in[n + j] = g if ctx.needs_input_grad[1 + n + j] else None
        outs: list[torch.Tensor | None] = [None] * len(tensors)
        targets: list[torch.Tensor] = []
        sources: list[torch.Tensor] = []
        fresh: list[int] = []
        if _may_accumulate_directly():
            fresh = _grad_regions(ctx, layout, tensors, grads_in, targets, sources)
        else:
            fresh = [i for i in range(len(tensors)) if grads_in[i] is not None]
        if targets:  # the weights' existing gradients gain the slices', nothing else moves
            torch._foreach_add_(targets, sources)
        for i in [i for i in fresh if i >= n]:  # the source's inputs: whole gradients as they are
            outs[i] = grads_in[i]
        fresh = [i for i in fresh if i < n]
        if fresh:
            buffer = tensors[fresh[0]].new_zeros(sum(tensors[i].numel() for i in fresh))
            targets, sources, base = [], [], 0
            for i in fresh:
                r = layout.regions[i]
                outs[i] = buffer.as_strided(r.shape, r.stride, base)
                targets.append(buffer.as_strided(r.size, r.stride, base + r.offset))
                sources.append(grads_in[i])  # type: ignore[arg-type]
                base += tensors[i].numel()
            torch._foreach_copy_(targets, sources)
        return (None, *outs)


def _full_precision(device_type: str) -> contextlib.AbstractContextManager:
    """Autocast off where it is on: derived weights keep the stored weights' dtype."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def _as(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t if t.dtype == dtype else t.to(dtype)


def _may_accumulate_directly() -> bool:
    """No graph is being built for the gradients and no distributed reduction is running."""
    return not torch.is_grad_enabled() and not (dist.is_available() and dist.is_initialized())


def _grad_regions(
    ctx: Any,
    layout: _Layout,
    tensors: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor | None],
    targets: list[torch.Tensor],
    sources: list[torch.Tensor],
) -> list[int]:
    """Pairs each gradient with its slice's part of the weight's `.grad` (appended to `targets`
    and `sources`) where it may go straight there; returns the indices of the others.

    A gradient goes straight into `.grad` only when this backward would accumulate it there
    anyway (`loss.backward()`, not `torch.autograd.grad` or `inputs=` leaving the weight out),
    with no hooks on the weight and a dense `.grad` laid out like it (and, from
    `_may_accumulate_directly`, no graph being built for the gradient and no distributed
    reduction, whose hooks must see every accumulation). Then adding the slice in place is
    exactly what accumulating a zero-padded full-size gradient would do, without writing the
    zeros. (`.grad` has the weight's size: PyTorch refuses any other.) This runs for every
    weight of a subnet at every step, so it is one flat loop.
    """
    nodes, fresh = ctx.next_functions, []
    strided, will_run = torch.strided, _will_run
    try:
        for i, size, stride, offset, whole in layout.grad_views:
            g = grads[i]
            if g is None:
                continue
            param = tensors[i]
            grad = param.grad
            node = nodes[i][0]
            if (
                grad is None
                or grad.layout != strided
                or grad.stride() != stride
                or param._backward_hooks
                or param._post_accumulate_grad_hooks
                or node is None
                or not will_run(node)
            ):
                fresh.append(i)
                continue
            sources.append(g)
            targets.append(
                grad if whole else grad.as_strided(size, stride, grad.storage_offset() + offset)
            )
    except RuntimeError:  # inside torch.autograd.grad: .grad is not touched
        targets.clear()
        sources.clear()
        return [i for i in range(len(tensors)) if grads[i] is not None]
    return fresh


_will_run = torch._C._will_engine_execute_node


class Slices:
    """A fixed list of slices of shared weights, laid out once and taken as one node per call.

    A subnet reads the same slices at every training step; what only depends on which slices
    (views, copy-buffer layout, grouping by dtype and device) is worked out here once, so a step
    pays for the copies and products, not for planning them.

    Args:
        params: the stored weights.
        regions: the slice of each (None: the whole weight).
        mapped: `{i: shape}` for the slices that become rows times a matrix (see `Mapped`).
        source: where the mapped slices' matrices come from, in the order of their indices
            (needed when `mapped` is not empty).
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        regions: Sequence[Region | None],
        mapped: Mapping[int, tuple[int, ...]] | None = None,
        source: MatrixSource | None = None,
    ) -> None:
        mapped = dict(sorted((mapped or {}).items()))
        if mapped and source is None:
            raise ValueError("mapped slices need a source of their matrices")
        self.params = list(params)
        self.mapped = mapped
        self.source: MatrixSource = source or GivenMatrices([])
        chosen: dict[int, Region] = {}
        for i, r in enumerate(regions):
            if r is not None:
                chosen[i] = r
            elif i in mapped:
                p = params[i]
                chosen[i] = _region(p, tuple(p.shape), 0)
        self.chosen = chosen
        by_kind: dict[tuple[torch.dtype, torch.device], list[int]] = {}
        for i in chosen:
            p = params[i]
            by_kind.setdefault((p.dtype, p.device), []).append(i)
        self.groups: list[tuple[list[int], _Layout]] = []
        for members in by_kind.values():
            maps = [(j, mapped[i]) for j, i in enumerate(members) if i in mapped]
            if maps and len(maps) != len(mapped):
                raise ValueError("mapped slices must share one dtype and device")
            layout = _Layout([chosen[i] for i in members], maps, self.source)
            self.groups.append((members, layout))

    def take(self) -> list[torch.Tensor]:
        """Every weight sliced (whole where its region is None), the mapped ones multiplied by
        their matrices. Without gradients (inference, `torch.no_grad`) the slices are views."""
        params, out = self.params, list(self.params)
        if not self.chosen:
            return out
        inputs = self.source.inputs
        grad = torch.is_grad_enabled() and (
            any(params[i].requires_grad for i in self.chosen)
            or any(t.requires_grad for t in inputs)
        )
        if not grad:
            for i, r in self.chosen.items():
                out[i] = _view(params[i], r)
            if self.mapped:
                with torch.no_grad(), _full_precision(params[0].device.type):
                    matrices, _ = self.source.compute(inputs)
                for (i, shape), m in zip(self.mapped.items(), matrices, strict=True):
                    out[i] = mapped_product(_rows(out[i]), m).reshape(shape)
            return out
        for members, layout in self.groups:
            extra = inputs if layout.maps else ()
            parts = _Take.apply(layout, *(params[i] for i in members), *extra)
            for i, part in zip(members, parts, strict=True):
                out[i] = part
        return out


def take(
    params: Sequence[torch.Tensor],
    regions: Sequence[Region | None],
    mapped: Mapping[int, Mapped] | None = None,
) -> list[torch.Tensor]:
    """Every `params[i]` sliced by `regions[i]` (whole where None), as one graph node.

    `mapped[i]`, where given, turns slice i into its rows times a matrix (see `Mapped`).
    Without gradients (inference, `torch.no_grad`) the slices are plain views. `Slices` keeps
    the layout for slices taken again and again.
    """
    mapped = dict(sorted((mapped or {}).items()))
    source = GivenMatrices([m.matrix for m in mapped.values()])
    return Slices(params, regions, {i: m.shape for i, m in mapped.items()}, source).take()
