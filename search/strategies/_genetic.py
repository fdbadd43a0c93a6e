"""Integer genes for pymoo: vectorised canonical form, features and NSGA-II set-up.

NSGA-II on predictors evaluates 20,000 candidates per LINAS step, so everything that runs
per candidate (canonicalisation, one-hot features, duplicate checks) works on whole gene
matrices with numpy instead of decoding `Arch` objects one by one. The results equal
`SearchSpace.decode/encode/features` exactly (tested).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.population import Population
from pymoo.core.problem import Problem as PymooProblem
from pymoo.core.repair import Repair
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.sampling.rnd import IntegerRandomSampling

from supernet.space import Arch, SearchSpace


class GeneCodec:
    """Gene matrices ↔ canonical genes, one-hot features and hashable keys for one space."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.num_options = space.num_options
        self.upper = self.num_options - 1
        labels = {label: i for i, label in enumerate(space.labels)}
        # (decision index, parent index, parent option index -> active?) in decision order
        self._conditions: list[tuple[int, int, np.ndarray]] = []
        for i, d in enumerate(space.decisions):
            if d.active_when is not None:
                parent_label, threshold = d.active_when
                parent = labels[parent_label]
                options = space.decisions[parent].options
                table = np.array([o >= threshold for o in options], dtype=bool)
                self._conditions.append((i, parent, table))
        self._offsets = np.concatenate([[0], np.cumsum(self.num_options)[:-1]]).astype(np.int64)
        # a space whose architectures are not every combination (an incomplete table) maps
        # each gene vector to one that exists
        self._repair: Callable[[np.ndarray], np.ndarray] | None = getattr(
            space, "repair_genes", None
        )

    def canonical(self, X: np.ndarray) -> np.ndarray:
        """Round, clip and zero switched-off genes, in decision order like `SearchSpace.arch`
        (and, for a space with `repair_genes`, map them to an architecture that exists)."""
        X = np.atleast_2d(np.asarray(X))
        if X.dtype.kind != "i":
            X = np.rint(X)
        genes = np.minimum(np.maximum(X, 0), self.upper).astype(np.int64)
        for i, parent, table in self._conditions:
            genes[~table[genes[:, parent]], i] = 0
        return genes if self._repair is None else self._repair(genes)

    def active(self, genes: np.ndarray) -> np.ndarray:
        """Boolean mask of the decisions that matter, for canonical genes."""
        mask = np.ones(genes.shape, dtype=bool)
        for i, parent, table in self._conditions:
            mask[:, i] = table[genes[:, parent]]
        return mask

    def features(self, genes: np.ndarray) -> np.ndarray:
        """Masked one-hot features of canonical genes (equal to `SearchSpace.features`)."""
        n = genes.shape[0]
        out = np.zeros((n, self.space.num_features), dtype=np.float32)
        rows = np.repeat(np.arange(n), genes.shape[1])
        cols = (genes + self._offsets).ravel()
        out[rows, cols] = self.active(genes).ravel()
        return out

    def keys(self, genes: np.ndarray) -> list[bytes]:
        """One hashable key per row of canonical genes (equal keys ⇔ equal archs)."""
        genes = np.ascontiguousarray(genes, dtype=np.int64)
        return [row.tobytes() for row in genes]

    def encode(self, archs: Iterable[Arch]) -> np.ndarray:
        rows = [self.space.encode(a) for a in archs]
        return np.array(rows, dtype=np.int64).reshape(len(rows), len(self.num_options))

    def decode(self, genes: np.ndarray) -> list[Arch]:
        """Canonical genes → archs, equal to `SearchSpace.decode` but without re-validating
        (the hot path when LINAS asks exact costs of thousands of candidates)."""
        pairs = [(d.label, d.options) for d in self.space.decisions]
        return [
            Arch({label: opts[g] for (label, opts), g in zip(pairs, row.tolist(), strict=True)})
            for row in np.asarray(genes, dtype=np.int64)
        ]


class CanonicalRepair(Repair):
    """Rounding repair that also resets switched-off genes, so one arch has one gene vector."""

    def __init__(self, codec: GeneCodec) -> None:
        super().__init__()
        self.codec = codec

    def _do(self, problem, X, **kwargs):  # noqa: ANN001, ANN003, ANN202 (pymoo signature)
        return self.codec.canonical(X)


class NoveltyElimination(DuplicateElimination):
    """Duplicate elimination by canonical gene key that also drops archs in `exclude`.

    With `exclude` = the already validated archs, every individual NSGA-II proposes is new,
    so no validation budget is spent twice and LINAS batches are always full.
    """

    def __init__(self, codec: GeneCodec, exclude: Callable[[], set[bytes]] | None = None) -> None:
        super().__init__()
        self.codec = codec
        self.exclude = exclude or set

    def _do(self, pop, other, is_duplicate):  # noqa: ANN001, ANN202 (pymoo signature)
        # populations hold repaired (canonical) genes, so keys compare archs directly
        keys = self.codec.keys(pop.get("X"))
        banned = self.exclude()
        if other is None:
            seen: set[bytes] = set()
            for i, k in enumerate(keys):
                is_duplicate[i] = k in seen or k in banned
                seen.add(k)
        else:
            taken = set(self.codec.keys(other.get("X")))
            for i, k in enumerate(keys):
                is_duplicate[i] = is_duplicate[i] or k in taken or k in banned
        return is_duplicate


class GeneProblem(PymooProblem):
    """pymoo's view of a space: integer genes in [0, options-1], evaluated a matrix at a time.

    Args:
        codec: the space's gene codec.
        n_obj, n_constr: numbers of objectives and `G <= 0` constraints.
        evaluate: canonical gene matrix → (F, G); called once per generation when used with
            `minimize` (ask/tell users evaluate outside and never call it).
    """

    def __init__(
        self,
        codec: GeneCodec,
        n_obj: int,
        n_constr: int,
        evaluate: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        super().__init__(
            n_var=len(codec.num_options),
            n_obj=n_obj,
            n_ieq_constr=n_constr,
            xl=np.zeros(len(codec.num_options)),
            xu=codec.upper.astype(float),
            vtype=int,
        )
        self.codec = codec
        self._evaluate_genes = evaluate

    def _evaluate(self, X, out, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if self._evaluate_genes is None:
            raise RuntimeError("this GeneProblem is evaluated through ask/tell")
        F, G = self._evaluate_genes(self.codec.canonical(X))
        out["F"] = F
        if self.n_ieq_constr:
            out["G"] = G


def make_nsga2(
    codec: GeneCodec,
    pop_size: int,
    seed: int,
    exclude: Callable[[], set[bytes]] | None = None,
    sampling: np.ndarray | None = None,
) -> NSGA2:
    """NSGA-II as LINAS configures it: integer sampling, SBX(0.9, η15), PM(η20), rounding.

    Args:
        sampling: optional initial gene matrix (else uniform integer sampling).
    """
    initial = IntegerRandomSampling() if sampling is None else Population.new(X=sampling)
    return NSGA2(
        pop_size=pop_size,
        sampling=initial,
        crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
        mutation=PM(eta=20, vtype=float, repair=RoundingRepair()),
        repair=CanonicalRepair(codec),
        eliminate_duplicates=NoveltyElimination(codec, exclude),
        seed=seed,
    )


def seed_from(rng: np.random.Generator) -> int:
    """An integer seed for libraries that take one (pymoo, scikit-learn), drawn from `rng`."""
    return int(rng.integers(2**31 - 1))
