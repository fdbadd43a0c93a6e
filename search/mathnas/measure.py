"""Measuring a MathNAS block table on a problem: m·n counted validations, costs for free.

What is measured (MathNAS, arXiv 2311.04943, §3):

- The *context* net: ``average_flops`` uses N^avg, in each node the present candidate whose FLOPs
  change is closest to the node's mean; ``averaged`` (the paper's Eq. 3) averages each block's
  drop over several contexts drawn uniformly from the present candidates (all of them when
  `contexts_fraction` is 1 and the space is small).
- For node i and block j: the context with node i = its reference block (the last candidate, the
  largest by the space's small → large convention) and with node i = j; the drop is
  b^A(i, j) = Acc(ref) − Acc(j).
- Cost changes (latency, MACs, … and the FLOPs b^F) come from the same pairs, so, as in the
  paper, Lat(N) = Lat(Ñ) − Σ b^L with b^L measured in the context; costs are free.
- The base net Ñ (every node at its reference) for Acc(Ñ) and the base costs; F̄ is the mean
  FLOPs of `flops_samples` architectures drawn by `space.sample`, and `min_flops` the smallest
  FLOPs among them and the space's smallest architecture (the floor of the FLOPs correction).

Absent options and monotone depth: `compose` switches off every later optional node of a depth
decision once one is absent, so "layer l absent" in a context with layers l+1.. present would
remove several layers at once and the additive sum over a shallower network would count the
later layers twice. The absent option of an optional node l is therefore measured with the later
optional nodes of its depth decision absent on *both* sides: Acc(context, l = ref, l+1.. absent)
− Acc(context, l.. absent); the same for its cost changes. The drops of removing layers
L, L−1, …, l then telescope to the drop of the whole depth change. Contexts keep every node
present so that each present block is measured where its node runs.

Decisions that no node sets are taken from the space's largest architecture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from search.mathnas.table import BlockNode, BlockOption, BlockTable, BlockTableError
from search.problem import METRICS, Problem, ProblemError
from supernet.errors import ConfigError
from supernet.space import Arch, LayerNode, SearchSpace

CONTEXTS = ("average_flops", "averaged")


def score_metric(problem: Problem, metric: str | None = None) -> tuple[str, float]:
    """The quality metric a block table holds and its sign (a minimised metric is negated)."""
    if metric is None:
        quality = [o for o in problem.objectives if o in ("accuracy", "bleu", "loss")]
        if not quality:
            raise ProblemError(
                f"no quality objective (accuracy, bleu or loss) in {list(problem.objectives)}"
            )
        metric = quality[0]
    maximise = METRICS.get(metric, (True, 0.0))[0]
    return metric, 1.0 if maximise else -1.0


def compose(space: SearchSpace, choices: Sequence[int]) -> Arch:
    """Node choices → Arch, with decisions outside the nodes at the largest option."""
    return space.compose([int(c) for c in choices], base=space.largest())


def reference_choices(space: SearchSpace) -> list[int]:
    """Ñ: every node at its reference block (its last candidate)."""
    return [len(node.candidates) - 1 for node in space.nodes]


def _next_same_depth(nodes: Sequence[LayerNode], i: int) -> int | None:
    label = nodes[i].depth_label
    for k in range(i + 1, len(nodes)):
        if nodes[k].depth_label == label:
            return k
    return None


def _pair(space: SearchSpace, ctx: Sequence[int], i: int, j: int) -> tuple[Arch, Arch]:
    """(reference net, block net) measuring option j of node i in context `ctx`."""
    node = space.nodes[i]
    ref = list(ctx)
    ref[i] = len(node.candidates) - 1
    alt = list(ctx)
    alt[i] = j
    if node.optional and j == node.absent_index:
        nxt = _next_same_depth(space.nodes, i)
        if nxt is not None:
            ref[nxt] = space.nodes[nxt].absent_index  # type: ignore[assignment]
    return compose(space, ref), compose(space, alt)


def _contexts(
    space: SearchSpace,
    problem: Problem,
    context: str,
    contexts_fraction: float,
    num_contexts: int | None,
    flops_metric: str,
    rng: np.random.Generator,
) -> list[list[int]]:
    present = [len(node.candidates) for node in space.nodes]
    if context == "average_flops":
        base = reference_choices(space)
        f0 = _cost(problem, compose(space, base), flops_metric)
        ctx = []
        for i, n in enumerate(present):
            f = np.array(
                [
                    _cost(problem, compose(space, _with(base, i, j)), flops_metric) - f0
                    for j in range(n)
                ]
            )
            ctx.append(int(np.argmin(np.abs(f - f.mean()))))
        return [ctx]
    if context != "averaged":
        raise ConfigError(f"unknown context {context!r}; choose from {list(CONTEXTS)}")
    total = math.prod(present)
    if num_contexts is None:
        if not 0 < contexts_fraction <= 1:
            raise ConfigError(f"contexts_fraction must be in (0, 1], got {contexts_fraction}")
        num_contexts = math.ceil(contexts_fraction * total)
    k = max(1, min(int(num_contexts), total))
    if k > problem.remaining:
        raise ProblemError(
            f"the averaged context draws {k} contexts (of {total}), each needing validations, "
            f"but only {problem.remaining} are left; lower contexts_fraction or set num_contexts"
        )
    if k == total and total <= 1_000_000:
        return [list(map(int, idx)) for idx in np.ndindex(*present)]
    chosen: dict[tuple[int, ...], None] = {}
    while len(chosen) < k:
        chosen[tuple(int(rng.integers(n)) for n in present)] = None
    return [list(c) for c in chosen]


def _with(choices: Sequence[int], i: int, j: int) -> list[int]:
    out = list(choices)
    out[i] = j
    return out


def _cost(problem: Problem, arch: Arch, name: str) -> float:
    costs = problem.cost(arch)
    if name not in costs:
        raise ProblemError(f"the problem's cost has no {name!r}; available: {sorted(costs)}")
    return float(costs[name])


def plan_block_table(
    problem: Problem,
    context: str = "average_flops",
    contexts_fraction: float = 1.0,
    num_contexts: int | None = None,
    flops_metric: str = "macs",
    rng: np.random.Generator | None = None,
) -> tuple[list[list[int]], list[Arch]]:
    """The contexts and the distinct archs a block table needs validated (Ñ first)."""
    space = problem.space
    rng = rng if rng is not None else np.random.default_rng(0)
    contexts = _contexts(
        space, problem, context, contexts_fraction, num_contexts, flops_metric, rng
    )
    archs: dict[str, Arch] = {}
    base = compose(space, reference_choices(space))
    archs[base.arch_id] = base
    for ctx in contexts:
        for i, node in enumerate(space.nodes):
            for j in range(node.num_options):
                for a in _pair(space, ctx, i, j):
                    archs.setdefault(a.arch_id, a)
    return contexts, list(archs.values())


def measure_block_table(
    problem: Problem,
    context: str = "average_flops",
    contexts_fraction: float = 1.0,
    num_contexts: int | None = None,
    flops_metric: str = "macs",
    metric: str | None = None,
    flops_samples: int = 256,
    rng: np.random.Generator | None = None,
) -> BlockTable:
    """Validate the networks MathNAS needs (through `problem.evaluate`) and build the table.

    Args:
        problem: a problem whose space has layer nodes.
        context: `average_flops` (one context, N^avg) or `averaged` (Eq. 3).
        contexts_fraction: for `averaged`, the fraction of all-present contexts to draw.
        num_contexts: for `averaged`, an exact number of contexts (overrides the fraction).
        flops_metric: the cost metric used as FLOPs (N^avg and the FLOPs correction).
        metric: the quality metric (default: the problem's first accuracy/bleu/loss objective).
        flops_samples: archs drawn to estimate F̄ (costs are free).
        rng: draws the contexts and the F̄ sample.

    Raises:
        ProblemError: when the remaining budget cannot pay for the validations; it says how
            many are needed.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    space = problem.space
    name, sign = score_metric(problem, metric)
    contexts, archs = plan_block_table(
        problem, context, contexts_fraction, num_contexts, flops_metric, rng
    )
    new = [a for a in archs if not problem.seen(a)]
    if len(new) > problem.remaining:
        raise ProblemError(
            f"measuring the MathNAS block table ({context}, {len(contexts)} context(s)) needs "
            f"{len(archs)} validations, {len(new)} of them new, but only {problem.remaining} of "
            f"the budget of {problem.budget} are left; raise the budget or load a measured table "
            "(block_table=path.yaml)"
        )
    measured = problem.evaluate(archs)
    score = {a.arch_id: sign * m[name] for a, m in zip(archs, measured, strict=True)}

    base_choices = reference_choices(space)
    base = compose(space, base_choices)
    base_cost = problem.cost(base)
    columns = sorted(k for k, v in base_cost.items() if isinstance(v, (int, float)))
    if flops_metric not in base_cost:
        raise ProblemError(
            f"the problem's cost has no FLOPs metric {flops_metric!r}; available: {columns}"
        )
    nodes = []
    for i, node in enumerate(space.nodes):
        options = []
        for j in range(node.num_options):
            drops, deltas = [], []
            for ctx in contexts:
                ref, alt = _pair(space, ctx, i, j)
                drops.append(score[ref.arch_id] - score[alt.arch_id])
                ref_c, alt_c = problem.cost(ref), problem.cost(alt)
                deltas.append([float(alt_c[c]) - float(ref_c[c]) for c in columns])
            delta = dict(zip(columns, np.mean(deltas, axis=0).tolist(), strict=True))
            options.append(
                BlockOption(
                    name=_option_name(node, j),
                    acc_drop=float(np.mean(drops)),
                    flops=delta[flops_metric],
                    costs=delta,
                )
            )
        nodes.append(
            BlockNode(
                name=node.name,
                options=tuple(options),
                reference=len(node.candidates) - 1,
                depth_label=node.depth_label,
                absent=node.absent_index,
            )
        )
    sample = [space.sample(rng) for _ in range(max(1, flops_samples))]
    sample_flops = [_cost(problem, a, flops_metric) for a in sample]
    mean_flops = float(np.mean(sample_flops))
    min_flops = min([_cost(problem, space.smallest(), flops_metric), *sample_flops])
    meta: dict[str, Any] = {
        "space": space.name,
        "context": context,
        "contexts": len(contexts),
        "networks": len(archs),
        "flops_samples": len(sample),
    }
    if context == "average_flops":
        meta["context_choices"] = contexts[0]
    try:
        return BlockTable(
            base_accuracy=score[base.arch_id],
            base_flops=float(base_cost[flops_metric]),
            base_costs={c: float(base_cost[c]) for c in columns},
            mean_flops=mean_flops,
            nodes=tuple(nodes),
            metric=name,
            flops_metric=flops_metric,
            meta=meta,
            min_flops=min_flops if min_flops > 0 else None,
        )
    except BlockTableError as err:
        raise BlockTableError(f"the measured block table is invalid: {err}") from None


def _option_name(node: LayerNode, j: int) -> str:
    if node.optional and j == node.absent_index:
        return "absent"
    return "/".join(f"{k}={v}" for k, v in node.candidates[j].items()) or str(j)
