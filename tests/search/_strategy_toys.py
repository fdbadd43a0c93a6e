"""Toy problems with known Pareto fronts for the search strategies (numpy only, no torch).

Accuracy and MACs are sums of per-decision contributions (plus a small interaction in
accuracy), so the true front of the whole space is computed exactly by brute force over
the gene grid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from search.problem import Problem
from supernet.space import Arch, Decision, LayerNode, SearchSpace


class AdditiveToy:
    """`n` decisions with `k` options each; option j of decision i adds acc[i, j], macs[i, j].

    Args:
        interaction: weight of a product term between decisions 0 and 1 in accuracy.
    """

    def __init__(self, n: int = 8, k: int = 4, seed: int = 0, interaction: float = 1.5) -> None:
        rng = np.random.default_rng(seed)
        self.space = SearchSpace(
            f"toy{n}x{k}", [Decision(f"d{i}", tuple(range(k))) for i in range(n)]
        )
        steps = np.sort(rng.uniform(0.2, 1.0, (n, k - 1)), axis=1)[:, ::-1]
        self.acc = np.concatenate([np.zeros((n, 1)), np.cumsum(steps, axis=1)], axis=1)
        self.acc *= rng.uniform(2.0, 6.0, (n, 1))
        growth = np.cumsum(rng.uniform(0.5, 1.5, (n, k)), axis=1)
        self.macs = growth * rng.uniform(1e6, 3e6, (n, 1))
        self.interaction = interaction
        self.k = k

    def genes(self, arch: Mapping[str, int]) -> np.ndarray:
        return np.array([arch[d.label] for d in self.space.decisions])

    def accuracy_of(self, G: np.ndarray) -> np.ndarray:
        G = np.atleast_2d(G)
        rows = np.arange(G.shape[1])
        base = 30.0 + self.acc[rows, G].sum(axis=1)
        return base + self.interaction * G[:, 0] * G[:, 1] / (self.k - 1) ** 2

    def macs_of(self, G: np.ndarray) -> np.ndarray:
        G = np.atleast_2d(G)
        return self.macs[np.arange(G.shape[1]), G].sum(axis=1)

    def validate(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        return [{"accuracy": float(self.accuracy_of(self.genes(a))[0])} for a in archs]

    def cost(self, arch: Arch) -> dict[str, float]:
        return {"macs": float(self.macs_of(self.genes(arch))[0])}

    def problem(self, budget: int, constraints: Mapping[str, float] | None = None) -> Problem:
        return Problem(
            self.space,
            ("accuracy", "macs"),
            constraints,
            self.validate,
            self.cost,
            budget,
            reference={"accuracy": 30.0},
        )

    def grid(self) -> np.ndarray:
        n = len(self.space.decisions)
        return np.indices((self.k,) * n).reshape(n, -1).T

    def optimal_hypervolume(self, problem: Problem) -> float:
        """Normalised hypervolume of the true front (feasible archs only), by brute force."""
        G = self.grid()
        acc, macs = self.accuracy_of(G), self.macs_of(G)
        ok = np.ones(len(G), dtype=bool)
        for name, bound in problem.constraints.items():
            ok &= {"macs": macs}[name] <= bound
        acc, macs = acc[ok], macs[ok]
        order = np.lexsort((-acc, macs))  # by macs, then best accuracy first
        best, volume = -np.inf, 0.0
        ref = problem.reference_point()  # (-acc_ref, macs_ref)
        front = []
        for i in order:
            if acc[i] > best:
                best = acc[i]
                front.append((macs[i], acc[i]))
        for j, (m, a) in enumerate(front):
            m_next = front[j + 1][0] if j + 1 < len(front) else ref[1]
            volume += max(m_next - m, 0.0) * max(a + ref[0], 0.0)
        box = float(np.prod(ref - problem.ideal_point()))
        return volume / box


def layered_space(n_nodes: int, n_opts: int, optional: Sequence[int] = ()) -> SearchSpace:
    """Nodes `n0`, `n1`, … with `n_opts` options each; the `optional` ones hang on one depth
    decision (node i is present when depth ≥ i + 1), as in MathNAS's and LayerNAS's spaces."""
    depth = {i: i + 1 for i in optional}
    decisions = [Decision("depth", tuple(range(min(optional), n_nodes + 1)))] if optional else []
    nodes = []
    for i in range(n_nodes):
        cond = ("depth", depth[i]) if i in depth else None
        decisions.append(Decision(f"n{i}", tuple(range(n_opts)), active_when=cond))
        nodes.append(
            LayerNode(
                f"n{i}",
                tuple({f"n{i}": o} for o in range(n_opts)),
                depth_label="depth" if i in depth else None,
                depth_value=depth.get(i),
            )
        )
    return SearchSpace("toy", decisions, nodes)
