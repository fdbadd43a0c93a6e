"""Once-for-All's published MobileNetV3 weights under our names, and OFA's subnet settings.

OFA (`ofa` package, `OFAMobileNetV3`) numbers its blocks globally: block 0 is the fixed first
block, then each of the five units holds `max(depths)` elastic blocks. The published files
(`ofa_mbv3_d234_e346_k357_w1.0`, `..._w1.2`) predate a rename and call each block's layer
`mobile_inverted_conv`; today's package calls it `conv`. Both load. OFA's subnet settings are
flat lists: a kernel size and an expansion ratio per elastic block, a depth per unit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from supernet.mobilenetv3.layout import Layout
from supernet.space import Arch, SearchSpace
from supernet.weight_import import Take

# our module prefix → OFA's, for the fixed parts
_FIXED = {
    "stem.0.": "first_conv.conv.",
    "stem.1.": "first_conv.bn.",
    "first_block.depthwise.0.": "blocks.0.conv.depth_conv.conv.",
    "first_block.depthwise.1.": "blocks.0.conv.depth_conv.bn.",
    "first_block.project.0.": "blocks.0.conv.point_linear.conv.",
    "first_block.project.1.": "blocks.0.conv.point_linear.bn.",
    "head.final_expand.0.": "final_expand_layer.conv.",
    "head.final_expand.1.": "final_expand_layer.bn.",
    "head.feature_mix.0.": "feature_mix_layer.conv.",
    "head.classifier.": "classifier.linear.",
}
# inside an elastic block: our name → OFA's name (after `blocks.<i>.conv.`)
_BLOCK = {
    "expand_conv.weight": "inverted_bottleneck.conv.conv.weight",
    "expand_bn.": "inverted_bottleneck.bn.bn.",
    "depthwise.weight": "depth_conv.conv.conv.weight",
    "depthwise_bn.": "depth_conv.bn.bn.",
    "se.reduce_weight": "depth_conv.se.fc.reduce.weight",
    "se.reduce_bias": "depth_conv.se.fc.reduce.bias",
    "se.expand_weight": "depth_conv.se.fc.expand.weight",
    "se.expand_bias": "depth_conv.se.fc.expand.bias",
    "project.weight": "point_linear.conv.conv.weight",
    "project_bn.": "point_linear.bn.bn.",
}
_UNIT_BLOCK = re.compile(r"^units\.(\d+)\.(\d+)\.(.+)$")
_TRANSFORM = re.compile(r"^depthwise\.transform\.(\d+)to(\d+)$")


def normalise_ofa_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict under today's `ofa` names (`module.` prefixes and old block names gone)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = key[len("module.") :] if key.startswith("module.") else key
        out[new.replace(".mobile_inverted_conv.", ".conv.")] = value
    return out


def _rename(table: Mapping[str, str], key: str) -> str | None:
    for ours, theirs in table.items():
        if key == ours or (ours.endswith(".") and key.startswith(ours)):
            return theirs + key[len(ours) :]
    return None


def ofa_key(key: str, max_depth: int) -> str:
    """OFA's name for our state-dict key `key` (units of `max_depth` blocks)."""
    fixed = _rename(_FIXED, key)
    if fixed is not None:
        return fixed
    match = _UNIT_BLOCK.match(key)
    if match is None:
        raise KeyError(f"no OFA name for {key!r}")
    index = 1 + int(match[1]) * max_depth + int(match[2])
    rest = match[3]
    transform = _TRANSFORM.match(rest)
    inner = (
        f"depth_conv.conv.{transform[1]}to{transform[2]}_matrix"
        if transform
        else _rename(_BLOCK, rest)
    )
    if inner is None:
        raise KeyError(f"no OFA name for {key!r}")
    return f"blocks.{index}.conv.{inner}"


def ofa_plan(keys: Sequence[str], layout: Layout) -> dict[str, Take]:
    """Where each of our keys comes from in an OFA MobileNetV3 state dict."""
    depth = len(layout.units[0])
    return {key: Take(ofa_key(key, depth)) for key in keys}


def ofa_settings(arch: Mapping[str, Any], layout: Layout) -> dict[str, list[int]]:
    """OFA's `set_active_subnet(ks=, e=, d=)` arguments for our `arch`.

    Blocks a unit's depth switches off get the unit's first block's values (OFA ignores them).
    """
    ks: list[int] = []
    es: list[int] = []
    ds: list[int] = []
    for u, unit in enumerate(layout.units, start=1):
        ds.append(int(arch[f"s{u}_depth"]))
        for b in range(1, len(unit) + 1):
            ks.append(int(arch.get(f"s{u}_b{b}_kernel", arch[f"s{u}_b1_kernel"])))
            es.append(int(arch.get(f"s{u}_b{b}_expand", arch[f"s{u}_b1_expand"])))
    return {"ks": ks, "e": es, "d": ds}


def arch_from_ofa(
    space: SearchSpace, ks: Sequence[int], e: Sequence[int], d: Sequence[int], resolution: int
) -> Arch:
    """Our arch for OFA's flat settings (e.g. a published specialized subnet's net config)."""
    units = len(d)
    per_unit = len(ks) // units
    if len(ks) != units * per_unit or len(e) != len(ks):
        raise ValueError(f"{len(ks)} kernels and {len(e)} ratios do not fill {units} units")
    values: dict[str, Any] = {d.label: d.options[0] for d in space.decisions}  # inactive ones
    values["resolution"] = int(resolution)
    for u in range(units):
        values[f"s{u + 1}_depth"] = int(d[u])
        for b in range(int(d[u])):
            values[f"s{u + 1}_b{b + 1}_kernel"] = int(ks[u * per_unit + b])
            values[f"s{u + 1}_b{b + 1}_expand"] = int(e[u * per_unit + b])
    return space.arch(values)


def to_ofa_state(state: Mapping[str, torch.Tensor], layout: Layout) -> dict[str, torch.Tensor]:
    """Our MobileNetV3 state dict under the names OFA publishes (`mobile_inverted_conv`)."""
    depth = len(layout.units[0])
    out = {}
    for key, value in state.items():
        name = re.sub(r"^(blocks\.\d+)\.conv\.", r"\1.mobile_inverted_conv.", ofa_key(key, depth))
        out[name] = value
    return out
