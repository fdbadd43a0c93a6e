"""Filling a supernet from somebody else's state dict by name, never by position.

A plan maps every tensor of our module to the publisher's tensor it comes from (a block of
rows for the parts of a fused projection). Loading refuses, with the first offending key, a
file that lacks a tensor we need, holds one of another shape, or holds one the plan never
reads: a file of another width or space cannot load silently half-right.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from supernet.errors import CheckpointError


class WeightMismatchError(CheckpointError):
    """Published weights that do not fit the supernet they were asked for."""


@dataclass(frozen=True)
class Take:
    """Where one of our tensors comes from: a source tensor, or `rows` of it."""

    source: str
    rows: tuple[int, int] | None = None  # [start, stop) along the first dimension


def _shape(shape: torch.Size | tuple[int, ...]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def import_weights(
    target: nn.Module,
    source: Mapping[str, torch.Tensor],
    plan: Mapping[str, Take],
    what: str,
    ignored: Collection[str] = (),
) -> None:
    """Copy `source` into `target` (parameters and buffers, BN statistics included) by `plan`.

    Args:
        target: our module; every entry of its state dict must have a plan entry.
        source: the published state dict (names normalised by the caller).
        plan: our key → where it comes from.
        what: the name users know the weights by (for messages).
        ignored: source keys that carry no weights (version counters, caches).

    Raises:
        WeightMismatchError: naming the first missing key, wrong shape or unused tensor.
    """
    ours = target.state_dict()
    unplanned = [key for key in ours if key not in plan]
    if unplanned:  # a mapping bug, not a user error: say which key
        raise KeyError(f"no source planned for {unplanned[0]!r} of {type(target).__name__}")
    hint = f"the file holds another network than {what} (another width or space?)"
    converted: dict[str, torch.Tensor] = {}
    for key, take in plan.items():
        if take.source not in source:
            raise WeightMismatchError(
                f"{what}: the file has no tensor {take.source!r} (needed for {key}); {hint}"
            )
        tensor = source[take.source]
        if take.rows is not None:
            start, stop = take.rows
            if tensor.dim() == 0 or tensor.shape[0] < stop:
                raise WeightMismatchError(
                    f"{what}: tensor {take.source!r} has shape {_shape(tensor.shape)}, too "
                    f"small for rows {start}:{stop}; {hint}"
                )
            tensor = tensor[start:stop]
        expected = ours[key].shape
        if tensor.shape != expected:
            raise WeightMismatchError(
                f"{what}: tensor {take.source!r} has shape {_shape(tensor.shape)} in the file "
                f"but {_shape(expected)} is needed; {hint}"
            )
        converted[key] = tensor.to(ours[key].dtype)
    used = {take.source for take in plan.values()} | set(ignored)
    unused = [key for key in source if key not in used]
    if unused:
        raise WeightMismatchError(
            f"{what}: the file holds tensor {unused[0]!r} ({len(unused)} unused in all) that "
            f"this supernet has no place for; {hint}"
        )
    target.load_state_dict(converted, strict=True)


def export_weights(source: nn.Module, plan: Mapping[str, Take]) -> dict[str, torch.Tensor]:
    """The state dict a publisher's file would hold for `source` (the inverse of a plan).

    Row blocks of one tensor (a fused projection's parts) are put back together in row order.
    """
    ours = source.state_dict()
    whole: dict[str, torch.Tensor] = {}
    blocks: dict[str, list[tuple[int, torch.Tensor]]] = {}
    for key, take in plan.items():
        if take.rows is None:
            whole[take.source] = ours[key].detach().clone()
        else:
            blocks.setdefault(take.source, []).append((take.rows[0], ours[key].detach()))
    for name, parts in blocks.items():
        whole[name] = torch.cat([t for _, t in sorted(parts, key=lambda p: p[0])])
    return whole
