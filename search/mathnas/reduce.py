"""Exact reduction of a one-option-per-node 0-1 program before HiGHS solves it.

The program is min c·x over binaries with Σ_j x(i, j) = 1 per node and rows A x ≤ b (cost
bounds, monotone depth, exclusion cuts). HiGHS alone spends tenths of a second on MobileNetV3
tables (20 nodes × 10 options): its root heuristics, strong branching and restarts cost more than
the problem is worth. Given a target T, three reductions keep every network of value ≤ T and
shrink the program to a few dozen variables, often to one:

1. Lagrangian fixing. For any y ≤ 0 (here the LP duals of the rows), every feasible x has
   c·x ≥ y·b + Σ_i min_j r(i, j) + (r(i, J_i) − min_j r(i, j)) with r = c − Aᵀy, so an option
   whose bound exceeds T is in no network ≤ T.
2. Grouping. Consecutive nodes are merged into one "group" node whose options are the
   combinations of their remaining options (while a merge forms at most `CAP`); rows that only
   touch one group are enforced by dropping the combinations that violate them. The bound of
   step 1 over groups is tighter, and it is applied again to the combinations.
3. Dominance. A combination is dropped when another of its group is no worse in the objective
   and in every row (swapping it in keeps every row satisfied and the objective no larger).

HiGHS (`scipy.optimize.milp`, mip_rel_gap = 0) solves what is left. If its optimum is ≤ T it is
the optimum of the full program; otherwise no network is ≤ T. `solve_reduced` chooses the
targets from a known feasible network (the incumbent) and the LP bound.

`round_lp` and `improve` find incumbents: the LP optimum rounded, then improved by swaps.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

CAP = 1024  # combinations a merge may form before it is pruned
BIG = 1 << 18  # ... when groups are merged at the end
DOMINANCE = 2048  # largest group checked for dominated combinations (K² comparisons)
SMALL = 64  # combinations left at the incumbent's value that HiGHS gets without lower targets
ROUNDS = (1 / 64, 1 / 16, 1 / 4)  # targets: LP bound + these × (incumbent − LP bound)
ROUNDS_WITHOUT_INCUMBENT = (1e-3, 1e-2, 1e-1)  # ... × (1 + |LP bound|) without one


@dataclass(frozen=True)
class Program:
    """min c·x, one option per node (options offsets[i]..offsets[i+1]), a x ≤ b."""

    c: np.ndarray
    a: np.ndarray
    b: np.ndarray
    offsets: np.ndarray


@dataclass(frozen=True)
class LpBound:
    """The LP relaxation: its value, solution x and the duals y ≤ 0 of the rows."""

    value: float
    y: np.ndarray
    x: np.ndarray


def one_hot_rows(offsets: np.ndarray) -> np.ndarray:
    """Σ_j x(i, j) = 1 as a (nodes × options) matrix."""
    n = int(offsets[-1])
    eq = np.zeros((len(offsets) - 1, n))
    for i in range(len(offsets) - 1):
        eq[i, offsets[i] : offsets[i + 1]] = 1.0
    return eq


def lp_bound(prog: Program) -> LpBound | None:
    """The LP relaxation (HiGHS); None when even it is infeasible (then so is the program)."""
    rows = prog.a.shape[0] > 0
    res = linprog(
        prog.c,
        A_ub=prog.a if rows else None,
        b_ub=prog.b if rows else None,
        A_eq=one_hot_rows(prog.offsets),
        b_eq=np.ones(len(prog.offsets) - 1),
        bounds=(0.0, 1.0),
        method="highs",
    )
    if res.status == 2:
        return None
    if res.status != 0:
        raise RuntimeError(f"HiGHS could not solve the LP relaxation: {res.message}")
    y = np.minimum(res.ineqlin.marginals, 0.0) if rows else np.zeros(0)
    return LpBound(float(res.fun), y, np.asarray(res.x))


def round_lp(prog: Program, lp: LpBound, limit: int = 1024) -> np.ndarray | None:
    """A feasible network near the LP optimum: every combination of the options the LP uses in
    its fractional nodes (the two largest each, at most `limit`), the best feasible one, then
    improved by swaps (`improve`). None when no such combination is feasible."""
    starts = prog.offsets[:-1]
    choices = [
        starts[i] + np.argsort(-lp.x[lo:hi])[: 2 if np.sort(lp.x[lo:hi])[-1] < 1 - 1e-9 else 1]
        for i, (lo, hi) in enumerate(itertools.pairwise(prog.offsets))
    ]
    frac = [i for i, opts in enumerate(choices) if len(opts) > 1][: int(np.log2(limit))]
    base = np.array([opts[0] for opts in choices])
    grid = np.array(list(itertools.product(*[choices[i] for i in frac])), dtype=int)
    grid = grid.reshape(len(grid), len(frac))
    picks = np.repeat(base[None, :], len(grid), axis=0)
    picks[:, frac] = grid
    ok = np.all(prog.a[:, picks].sum(axis=2) <= prog.b[:, None] + 1e-9, axis=0)
    if not ok.any():
        return None
    values = np.where(ok, prog.c[picks].sum(axis=1), np.inf)
    x = np.zeros(len(prog.c))
    x[picks[int(np.argmin(values))]] = 1.0
    return improve(prog, x)


def improve(prog: Program, x: np.ndarray, steps: int = 50) -> np.ndarray:
    """Local search: the best swap of one option, or of two options in different nodes, that
    keeps every row, while one improves the objective."""
    node_of = np.repeat(np.arange(len(prog.offsets) - 1), np.diff(prog.offsets))
    eps = 1e-12 * (1.0 + float(np.abs(prog.c).max()))
    x = x.copy()
    for _ in range(steps):
        cur = np.flatnonzero(x)[node_of]  # the chosen option of each option's node
        slack = prog.b - prog.a @ x + 1e-9
        gain = prog.c - prog.c[cur]
        delta = prog.a - prog.a[:, cur]
        single = np.where(np.all(delta <= slack[:, None], axis=0), gain, np.inf)
        # pairs: only options that improve alone or free room in some row
        useful = np.flatnonzero((gain < -eps) | np.any(delta < 0, axis=0))
        pair = gain[useful, None] + gain[None, useful]
        fits = np.all(delta[:, useful, None] + delta[:, None, useful] <= slack[:, None, None], 0)
        pair[~fits | (node_of[useful, None] == node_of[None, useful])] = np.inf
        j = int(np.argmin(single))
        p, q = np.unravel_index(int(np.argmin(pair)), pair.shape) if useful.size else (0, 0)
        best_pair = float(pair[p, q]) if useful.size else np.inf
        if single[j] <= best_pair and single[j] < -eps:
            x[cur[j]], x[j] = 0.0, 1.0
        elif best_pair < -eps:
            for k in (useful[p], useful[q]):
                x[cur[k]], x[k] = 0.0, 1.0
        else:
            break
    return x


def _tol(prog: Program, upper: float) -> float:
    return 1e-9 * (1.0 + abs(upper) + float(np.abs(prog.c).sum()))


@dataclass
class _Group:
    """Consecutive nodes first..last merged into one: their surviving combinations."""

    first: int
    last: int
    combos: np.ndarray  # (K, nodes) global option indices
    a: np.ndarray  # (rows, K) row coefficients of each combination
    c: np.ndarray  # (K,) objective
    r: np.ndarray  # (K,) Lagrangian reduced cost


class _Reducer:
    """Builds the groups node by node, pruning each as it grows (see the module docstring)."""

    def __init__(self, prog: Program, lp: LpBound, tol: float) -> None:
        self.prog, self.tol = prog, tol
        self.upper = np.inf  # the target: combinations whose bound exceeds it are dropped
        self.r = prog.c - prog.a.T @ lp.y
        self.base = float(lp.y @ prog.b)
        self.mins = np.minimum.reduceat(self.r, prog.offsets[:-1])
        self.lower = self.base + float(self.mins.sum())
        node_of = np.repeat(np.arange(len(self.mins)), np.diff(prog.offsets))
        touched = [node_of[np.abs(row) > 0] for row in prog.a]
        self.row_first = np.array([t.min() if t.size else -1 for t in touched], dtype=int)
        self.row_last = np.array([t.max() if t.size else -1 for t in touched], dtype=int)

    def internal(self, g: _Group) -> np.ndarray:
        """Rows that touch no node outside the group (decided by its combinations alone)."""
        return (self.row_first >= g.first) & (self.row_last <= g.last) & (self.row_first >= 0)

    def single(self, i: int) -> _Group:
        lo, hi = self.prog.offsets[i], self.prog.offsets[i + 1]
        opts = np.arange(lo, hi)
        g = _Group(i, i, opts[:, None], self.prog.a[:, lo:hi], self.prog.c[lo:hi], self.r[lo:hi])
        return self.prune(g)

    def merge(self, g: _Group, h: _Group) -> _Group:
        k, m = len(g.combos), len(h.combos)
        combos = np.hstack([np.repeat(g.combos, m, axis=0), np.tile(h.combos, (k, 1))])
        merged = _Group(
            g.first,
            h.last,
            combos,
            np.repeat(g.a, m, axis=1) + np.tile(h.a, (1, k)),
            np.repeat(g.c, m) + np.tile(h.c, k),
            np.repeat(g.r, m) + np.tile(h.r, k),
        )
        return self.prune(merged)

    def prune(self, g: _Group, floor: float | None = None) -> _Group:
        """Drop combinations that break a row of their own, cannot beat `upper`, or are dominated.

        `floor` is the Lagrangian bound of the other nodes (default: the sum of their minima).
        """
        inside = self.internal(g)
        ok = np.all(g.a[inside] <= self.prog.b[inside, None] + 1e-9, axis=0)
        if floor is None:
            floor = self.lower - float(self.mins[g.first : g.last + 1].sum())
        ok &= floor + g.r <= self.upper + self.tol
        g = _Group(g.first, g.last, g.combos[ok], g.a[:, ok], g.c[ok], g.r[ok])
        if len(g.c) > 1:
            used = ~inside & np.any(g.a != 0, axis=1)
            keep = ~_dominated(np.column_stack([g.c, g.a[used].T]))
            g = _Group(g.first, g.last, g.combos[keep], g.a[:, keep], g.c[keep], g.r[keep])
        return g

    def groups(self, cap: int, upper: float, limit: float = np.inf) -> list[_Group] | None:
        """The groups pruned against `upper`; None when one loses every combination (then no
        network is ≤ upper), [] when more than `limit` combinations are left after pruning."""
        self.upper = upper
        out: list[_Group] = []
        for i in range(len(self.mins)):
            g = self.single(i)
            if out and len(out[-1].combos) * len(g.combos) <= cap:
                g = self.merge(out.pop(), g)
            if len(g.combos) == 0:
                return None
            out.append(g)
        return self.tighten(out, limit)

    def tighten(self, out: list[_Group], limit: float) -> list[_Group] | None:
        """Prune with the groups' own minima (a tighter bound), then merge the smallest pair of
        neighbours while their product stays ≤ BIG: few groups leave HiGHS little to do."""
        while True:
            gmins = np.array([g.r.min() for g in out])
            total = self.base + float(gmins.sum())
            out = [self.prune(g, total - gm) for g, gm in zip(out, gmins, strict=True)]
            if any(len(g.combos) == 0 for g in out):
                return None
            if sum(len(g.combos) for g in out) > limit:
                return []
            sizes = [len(a.combos) * len(b.combos) for a, b in zip(out, out[1:], strict=False)]
            if not sizes or min(sizes) > BIG:
                return out
            k = int(np.argmin(sizes))
            merged = self.merge(out[k], out[k + 1])
            if len(merged.combos) > DOMINANCE and len(out) > 2:  # too big to prune well
                return out
            out[k : k + 2] = [merged]


def _dominated(values: np.ndarray) -> np.ndarray:
    """Rows of `values` (K × features) that another row is ≤ in every feature (ties: keep first).

    One feature: all but the first minimum. Two: a sort. More: pairwise, only for K ≤ DOMINANCE.
    """
    k, f = values.shape
    out = np.ones(k, dtype=bool)
    if f == 1:
        out[int(np.argmin(values[:, 0]))] = False
    elif f == 2:
        order = np.lexsort((values[:, 1], values[:, 0]))
        v = values[order, 1]
        best_before = np.minimum.accumulate(np.concatenate([[np.inf], v[:-1]]))
        out[order[v < best_before]] = False
    elif k <= DOMINANCE:
        le = np.all(values[:, None, :] <= values[None, :, :], axis=2)  # le[k, l]: k ≤ l
        lt = np.any(values[:, None, :] < values[None, :, :], axis=2)
        earlier = np.tri(k, k, -1, dtype=bool).T  # earlier[k, l]: k < l
        out = np.any(le & (lt | earlier), axis=0)
    else:
        out[:] = False
    return out


def solve_reduced(
    prog: Program,
    incumbent: np.ndarray | None = None,
    time_limit: float | None = None,
    cap: int = CAP,
) -> tuple[np.ndarray | None, bool]:
    """The optimum x of `prog` (or None if infeasible) and whether HiGHS proved it optimal.

    Pruning against a target T keeps every network of value ≤ T, so if the reduced program's
    optimum is ≤ T it is the optimum of `prog`; otherwise there is no network ≤ T, and what
    HiGHS found is a better incumbent. The first target is the incumbent's value; when that
    leaves more than SMALL combinations (a weak incumbent), targets rise from the LP bound
    towards the incumbent (a tight target prunes almost everything, so a few cheap rounds
    replace one large MILP), and each better incumbent is tried first again. Without an
    incumbent the last round prunes nothing.
    """
    lp = lp_bound(prog)
    if lp is None:
        return None, True
    best = incumbent
    upper = np.inf if incumbent is None else float(prog.c @ incumbent)
    red = _Reducer(prog, lp, _tol(prog, 0.0 if incumbent is None else upper))
    lower = red.lower  # no network is below it
    if lower > upper + red.tol:
        return incumbent, True
    steps = list(ROUNDS if np.isfinite(upper) else ROUNDS_WITHOUT_INCUMBENT)
    at_upper = np.isfinite(upper)
    while True:
        limit = np.inf
        if at_upper:
            target, limit = upper, SMALL
        elif steps and np.isfinite(upper):
            target = lower + steps.pop(0) * (upper - lower)
        elif steps:
            target = lower + steps.pop(0) * (1.0 + abs(lower))
        else:
            target = upper
        groups = red.groups(cap, target, limit)
        if groups == []:  # too many combinations left at the incumbent's value
            at_upper = False
            continue
        x, optimal = (
            (None, True) if groups is None else _solve_groups(prog, red, groups, time_limit)
        )
        value = np.inf if x is None else float(prog.c @ x)
        if x is not None and not optimal:  # HiGHS stopped early (time limit)
            return (x if value <= upper else best), False
        if value <= target + red.tol:
            return x, True
        if target >= upper:  # nothing beats the incumbent (or, without one, nothing is feasible)
            return best, True
        lower = target  # no network is ≤ target
        at_upper = value < upper
        if at_upper:
            best, upper = x, value


def _solve_groups(
    prog: Program, red: _Reducer, groups: list[_Group], time_limit: float | None
) -> tuple[np.ndarray | None, bool]:
    """HiGHS on the groups' combinations; the chosen network (None if none is feasible)."""
    outer = ~np.any([red.internal(g) for g in groups], axis=0)
    z, optimal = _milp(
        np.concatenate([g.c for g in groups]),
        np.hstack([g.a[outer] for g in groups]),
        prog.b[outer],
        groups,
        time_limit,
    )
    if z is None:
        return None, optimal
    x = np.zeros(len(prog.c))
    start = 0
    for g in groups:
        x[g.combos[int(np.argmax(z[start : start + len(g.combos)]))]] = 1.0
        start += len(g.combos)
    return x, optimal


def _milp(
    c: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    groups: list[_Group],
    time_limit: float | None,
) -> tuple[np.ndarray | None, bool]:
    """HiGHS on the combinations: one per group, a z ≤ b."""
    sizes = np.array([len(g.combos) for g in groups])
    eq = one_hot_rows(np.concatenate([[0], np.cumsum(sizes)]))
    cons = [LinearConstraint(eq, 1.0, 1.0)]
    active = np.any(a != 0, axis=1)
    if np.any(active):
        cons.append(LinearConstraint(a[active], -np.inf, b[active]))
    scale = float(np.max(np.abs(c))) if np.any(c) else 1.0
    options: dict[str, float] = {"mip_rel_gap": 0.0}
    if time_limit is not None:
        options["time_limit"] = float(time_limit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = milp(
            c * (1e3 / scale),
            integrality=np.ones(len(c)),
            bounds=Bounds(0.0, 1.0),
            constraints=cons,
            options=options,
        )
    if res.x is None:
        if res.status == 2:
            return None, True
        raise RuntimeError(f"HiGHS found no solution of the MathNAS program: {res.message}")
    return np.round(res.x), res.status == 0
