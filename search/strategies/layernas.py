"""LayerNAS (arXiv 2304.11517): layer-by-layer search with a memo table of cost buckets.

The nodes of the space are searched in order. While node i is searched, nodes after it keep a
fixed *fill* option. A memo table keyed by cost bucket keeps the best `top_per_bucket`
candidates (by validated accuracy) of each layer; every stored candidate is expanded by the
options of the next node, the children are validated, and each child competes in its bucket.

The bucket of a candidate is its *lowest completion cost*: the real cost (`problem.cost`, free)
of the candidate with every later node at its cheapest option (the option with the smallest
cost change on a net with every node present). For additive costs this is the candidate's cost
up to a per-layer constant, so bucketing by it is the paper's bucketing by cost; it also gives
the pruning rule: a candidate whose lowest completion cost exceeds a constraint cannot become
feasible (when costs grow with each option, as MACs and latency do) and is dropped. Being a real
cost, it stays right for costs that do not add up, such as a resolution that scales every
layer (a space should list such a node first, so the layers are ranked at its setting).

Bucket range: `layer` (default) splits the range of lowest completion costs of the node's
validated children (capped at the constraint) into H equal parts, so the H buckets separate
the candidates being compared; `global` splits [smallest achievable cost, constraint] for every
node, where the children of early nodes, whose later nodes are still at their cheapest, crowd
into the lowest buckets.

Fill: `largest` (default) keeps later nodes at their largest option, so an early option is
ranked in a network with full capacity downstream and not behind a starved bottleneck;
`smallest` keeps the intermediate networks cheap (useful when the budget cannot reach the last
layer, since they are then more often feasible).

Bucket grid: with `bucket_jitter` the H equal buckets are shifted by a random fraction of a
bucket, drawn per layer from the run's generator. Whether two prefixes of nearly equal cost
share a bucket (and only the better one survives) is otherwise an accident of where the fixed
boundaries fall, identical in every run; jitter makes repeated runs sample that accident, so
the seeds of a benchmark are not copies of one run. Its cells are (range) / (H - 1) wide, so
there are still H of them and budgets and exact integer-cost grids are kept.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from search.mathnas.measure import score_metric
from search.problem import Problem, ProblemError
from supernet.errors import ConfigError
from supernet.space import Arch

log = logging.getLogger(__name__)
FILLS = ("largest", "smallest")
BUCKET_RANGES = ("layer", "global")


class LayerNAS:
    """LayerNAS search strategy.

    Args:
        buckets: H, the number of cost buckets per layer; None picks, after each layer, the
            largest H whose worst case for the remaining layers fits the remaining budget (at
            most `max_buckets`).
        top_per_bucket: candidates kept per bucket.
        cost_metric: the cost that is bucketed (default: the first constraint's metric, else the
            first cost objective, else `macs`).
        fill: option of the nodes not yet searched, `largest` or `smallest`.
        metric: quality metric (default: the first accuracy/bleu/loss objective).
        max_buckets: upper bound for the automatic H.
        bucket_jitter: shift each layer's bucket grid by a random fraction of a bucket.
        bucket_range: `layer` (the range of each node's children) or `global`.
    """

    name = "layernas"

    def __init__(
        self,
        buckets: int | None = None,
        top_per_bucket: int = 1,
        cost_metric: str | None = None,
        fill: str = "largest",
        metric: str | None = None,
        max_buckets: int = 100,
        bucket_jitter: bool = False,
        bucket_range: str = "layer",
    ) -> None:
        if fill not in FILLS:
            raise ConfigError(f"fill must be one of {FILLS}, got {fill!r}")
        if buckets is not None and buckets < 1:
            raise ConfigError(f"buckets must be at least 1, got {buckets}")
        if top_per_bucket < 1:
            raise ConfigError(f"top_per_bucket must be at least 1, got {top_per_bucket}")
        self.buckets = buckets
        self.top_per_bucket = top_per_bucket
        self.cost_metric = cost_metric
        self.fill = fill
        self.metric = metric
        self.max_buckets = max_buckets
        self.bucket_jitter = bucket_jitter
        if bucket_range not in BUCKET_RANGES:
            raise ConfigError(f"bucket_range must be one of {BUCKET_RANGES}, got {bucket_range!r}")
        self.bucket_range = bucket_range

    def run(self, problem: Problem, rng: np.random.Generator) -> dict[str, Any]:
        """Search the nodes in order within the budget; extras hold the front over buckets."""
        name, sign = score_metric(problem, self.metric)
        space = problem.space
        fill_arch = space.largest() if self.fill == "largest" else space.smallest()
        nodes = space.nodes
        fill = space.node_choices(fill_arch)

        def arch_of(choices: Sequence[int]) -> Arch:
            return space.compose(list(choices), base=fill_arch)

        metric = self._cost_metric(problem)
        metrics = list(dict.fromkeys([metric, *problem.constraints]))
        bounds = {m: problem.constraints.get(m, math.inf) for m in metrics}
        deltas = self._deltas(problem, fill, arch_of, metrics)
        cheapest = {m: [int(np.argmin(d)) for d in deltas[m]] for m in metrics}

        def forced_absent(choices: Sequence[int], i: int, k: int) -> bool:
            """Node k is switched off by an absent node of its depth decision at or before i."""
            label = nodes[k].depth_label
            return label is not None and any(
                nodes[m].depth_label == label and choices[m] == nodes[m].absent_index
                for m in range(min(i + 1, k))
            )

        def lowest(choices: Sequence[int], i: int) -> dict[str, float]:
            """Real cost of the candidate completed with the cheapest later options."""
            return {
                m: problem.cost(arch_of([*choices[: i + 1], *cheapest[m][i + 1 :]]))[m]
                for m in metrics
            }

        lo = float(lowest(fill, -1)[metric])
        hi = bounds[metric]
        if not math.isfinite(hi):
            priciest = [int(np.argmax(d)) for d in deltas[metric]]
            hi = float(problem.cost(arch_of(priciest))[metric])
        for m in metrics:
            smallest = lowest(fill, -1)[m]
            if smallest > bounds[m]:
                raise ProblemError(
                    f"constraint {m} <= {bounds[m]:g} cannot be met: the smallest achievable "
                    f"{m} is {smallest:g}"
                )
        used_h: list[int] = []
        spans: list[list[float]] = []
        one_pass = nodes[0].num_options + sum(n.num_options for n in nodes[1:]) * (
            self.top_per_bucket
        )
        if problem.remaining < one_pass:
            log.warning(
                "LayerNAS: a budget of %d validations may end before the last of the %d nodes "
                "(one pass with a single bucket can take up to %d); the answer is then the "
                "best feasible network validated so far. Raise the budget%s.",
                problem.remaining, len(nodes), one_pass,
                "" if self.fill == "smallest" else ", or set fill=smallest so that unfinished "
                "candidates are cheap networks",
            )

        def bucket(value: float, h: int, shift: float | None, lo: float, hi: float) -> int:
            if hi <= lo:
                return 0
            if shift is None:
                return min(max(int((value - lo) / (hi - lo) * h), 0), h - 1)
            if h == 1:
                return 0
            # h cells of width (hi - lo) / (h - 1), the grid shifted by `shift` of a cell
            return min(max(int((value - lo) / (hi - lo) * (h - 1) + shift), 0), h - 1)

        low_cache: dict[tuple[int, ...], dict[str, float]] = {}

        def expand(
            memo: Sequence[tuple[float, list[int]]], i: int
        ) -> dict[str, tuple[list[int], Arch, dict[str, float]]]:
            """Children of the memo's candidates at node i that can still meet every bound."""
            node = nodes[i]
            children: dict[str, tuple[list[int], Arch, dict[str, float]]] = {}
            for _, parent in sorted(memo, key=lambda t: -t[0]):
                if forced_absent(parent, i - 1, i):
                    options = [node.absent_index]
                else:
                    options = list(range(node.num_options))
                for j in options:
                    child = list(parent)
                    child[i] = int(j)  # type: ignore[arg-type]
                    key = tuple(child[: i + 1])
                    if key not in low_cache:
                        low_cache[key] = lowest(child, i)
                    low = low_cache[key]
                    if any(low[m] > bounds[m] for m in metrics):
                        continue
                    a = arch_of(child)
                    children.setdefault(a.arch_id, (child, a, low))
            return children

        def keep(
            children: dict[str, tuple[list[int], Arch, dict[str, float]]],
            scores: dict[str, float],
            h: int,
            shift: float | None,
            span: tuple[float, float],
        ) -> dict[int, list[tuple[float, list[int], Arch, dict[str, float]]]]:
            """The best `top_per_bucket` scored children of each of h cost buckets."""
            kept: dict[int, list[tuple[float, list[int], Arch, dict[str, float]]]] = {}
            for child, a, low in children.values():
                if a.arch_id in scores:
                    kept.setdefault(bucket(low[metric], h, shift, *span), []).append(
                        (scores[a.arch_id], child, a, low)
                    )
            return {
                b: sorted(v, key=lambda t: -t[0])[: self.top_per_bucket] for b, v in kept.items()
            }

        memo: list[tuple[float, list[int]]] = [(0.0, list(fill))]
        layers_done = 0
        stopped = None
        kept: dict[int, list[tuple[float, list[int], Arch, dict[str, float]]]] = {}
        for i, node in enumerate(nodes):
            children = expand(memo, i)
            archs = [a for _, a, _ in children.values()]
            fresh = {a.arch_id for a in problem.affordable(archs)}
            todo = [a for a in archs if problem.seen(a) or a.arch_id in fresh]
            if len(todo) < len(archs):
                stopped = (
                    f"the budget ran out at node {i} ({node.name}): "
                    f"{len(archs) - len(todo)} children not validated"
                )
            scores = {
                a.arch_id: sign * m[name]
                for a, m in zip(todo, problem.evaluate(todo) if todo else [], strict=True)
            }
            shift = float(rng.random()) if self.bucket_jitter else None
            h = self.buckets or self._auto_buckets(problem, nodes[i + 1 :])
            used_h.append(h)
            span = (lo, hi)
            if self.bucket_range == "layer" and scores:
                costs = [low[metric] for _, a, low in children.values() if a.arch_id in scores]
                span = (min(costs), min(max(costs), hi))
            spans.append(list(span))
            kept = keep(children, scores, h, shift, span)
            if stopped is not None or not kept:
                break
            memo = [(s, c) for entries in kept.values() for s, c, _, _ in entries]
            layers_done = i + 1
        completed = layers_done == len(nodes)
        front = [
            {
                "bucket": b,
                "rank": r,
                "arch": a.to_dict(),
                "arch_id": a.arch_id,
                "score": s,
                "costs": problem.cost(a),
                "lowest_completion": low,
            }
            for b in sorted(kept)
            for r, (s, _, a, low) in enumerate(kept[b])
        ]
        return {
            "metric": name if sign > 0 else f"-{name}",
            "cost_metric": metric,
            "buckets": used_h,
            "bucket_range": spans,
            "fill": self.fill,
            "bucket_jitter": self.bucket_jitter,
            "layers_completed": layers_done,
            "completed": completed,
            "stopped": stopped,
            "best": self._best(problem, name, sign, front if completed else None),
            "front": front,
        }

    # --- helpers ------------------------------------------------------------------------------
    def _cost_metric(self, problem: Problem) -> str:
        if self.cost_metric is not None:
            return self.cost_metric
        if problem.constraints:
            return next(iter(problem.constraints))
        costs = [o for o in problem.objectives if o not in ("accuracy", "bleu", "loss")]
        return costs[0] if costs else "macs"

    def _auto_buckets(self, problem: Problem, later: Sequence[Any]) -> int:
        """Largest H whose worst case (H · top · Σ options of the later nodes) fits the budget.

        Chosen again after every layer, so validations that pruning saved go to later layers.
        """
        per_bucket = sum(n.num_options for n in later) * self.top_per_bucket
        if per_bucket == 0:  # the last layer: buckets only shape the reported front
            return self.max_buckets
        return int(min(max(problem.remaining // per_bucket, 1), self.max_buckets))

    @staticmethod
    def _deltas(
        problem: Problem, fill: Sequence[int], arch_of: Any, metrics: Sequence[str]
    ) -> dict[str, list[np.ndarray]]:
        """Cost change of every option of every node on a net with every node present.

        The absent option of an optional node is measured with the later nodes of its depth
        decision absent on both sides, so the changes of removing several layers add up.
        """
        nodes = problem.space.nodes
        ref = [
            len(n.candidates) - 1 if n.optional and c == n.absent_index else c
            for n, c in zip(nodes, fill, strict=True)
        ]
        base = problem.cost(arch_of(ref))
        out: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
        for k, node in enumerate(nodes):
            rows: dict[str, list[float]] = {m: [] for m in metrics}
            for j in range(node.num_options):
                alt = list(ref)
                alt[k] = j
                other = base
                if node.optional and j == node.absent_index:
                    nxt = next(
                        (
                            q
                            for q in range(k + 1, len(nodes))
                            if nodes[q].depth_label == node.depth_label
                        ),
                        None,
                    )
                    if nxt is not None:
                        ref_off = list(ref)
                        ref_off[nxt] = int(nodes[nxt].absent_index or 0)
                        other = problem.cost(arch_of(ref_off))
                cost = problem.cost(arch_of(alt))
                for m in metrics:
                    if m not in cost:
                        raise ProblemError(
                            f"the problem's cost has no {m!r}; available: {sorted(cost)}"
                        )
                    rows[m].append(float(cost[m]) - float(other[m]))
            for m in metrics:
                out[m].append(np.array(rows[m]))
        return out

    @staticmethod
    def _best(
        problem: Problem, name: str, sign: float, front: list[dict[str, Any]] | None
    ) -> dict[str, Any] | None:
        """Best feasible of the last layer's table, or of everything validated if cut short."""
        if front is not None:
            pool = [(e["score"], e["arch"], e["arch_id"]) for e in front]
            pool = [p for p in pool if problem.cost_feasible(problem.space.arch(p[1]))]
        else:
            pool = [
                (sign * ev.measurement[name], ev.arch.to_dict(), ev.arch.arch_id)
                for ev in problem.history
                if problem.feasible(ev.measurement)
            ]
        if not pool:
            return None
        score, arch, arch_id = max(pool, key=lambda p: p[0])
        return {"arch": arch, "arch_id": arch_id, "score": score}
