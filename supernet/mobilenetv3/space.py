"""The Once-for-All MobileNetV3 search space as labelled decisions and layer nodes."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from supernet.space import Decision, LayerNode, SearchSpace

SPACE_NAME = "mobilenetv3"
NUM_UNITS = 5


def mobilenetv3_space(
    kernel_sizes: Sequence[int],
    expand_ratios: Sequence[int],
    depths: Sequence[int],
    resolutions: Sequence[int],
) -> SearchSpace:
    """Decisions per unit `u`: `s{u}_depth`, then per block `s{u}_b{b}_kernel`, `..._expand`.

    Blocks beyond the smallest depth are active only when the unit is deep enough, and are
    optional layer nodes. `resolution` is its own node, so node choices (MathNAS, LayerNAS)
    cover every decision; it is the first node because it scales the cost of every layer, so a
    layer-by-layer search (LayerNAS) fixes it before it ranks the layers' options by cost.
    Options are sorted small → large.
    """
    kernels, expands = tuple(kernel_sizes), tuple(expand_ratios)
    min_depth, max_depth = min(depths), max(depths)
    decisions: list[Decision] = []
    nodes = [LayerNode("resolution", tuple({"resolution": r} for r in resolutions))]
    for u in range(1, NUM_UNITS + 1):
        depth_label = f"s{u}_depth"
        decisions.append(Decision(depth_label, tuple(depths)))
        for b in range(1, max_depth + 1):
            optional = b > min_depth
            cond = (depth_label, b) if optional else None
            kernel, expand = f"s{u}_b{b}_kernel", f"s{u}_b{b}_expand"
            decisions.append(Decision(kernel, kernels, cond))
            decisions.append(Decision(expand, expands, cond))
            candidates = tuple(
                {kernel: k, expand: e} for k, e in itertools.product(kernels, expands)
            )
            nodes.append(
                LayerNode(
                    f"s{u}_b{b}",
                    candidates,
                    depth_label=depth_label if optional else None,
                    depth_value=b if optional else None,
                )
            )
    decisions.append(Decision("resolution", tuple(resolutions)))
    return SearchSpace(SPACE_NAME, decisions, nodes)
