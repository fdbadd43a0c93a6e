"""LINAS vs NSGA-II on a surrogate of OFA MobileNetV3 measurements (ImageNet top-1, MACs).

The "true" accuracy of a subnet is a gradient-boosted tree model fitted on every row of
the DyNAS-T measurement tables (a model family LINAS's Ridge/SVR predictors do not share,
so LINAS cannot win by fitting the truth exactly). MACs are exact: at a fixed resolution
and width each block's MACs depend only on its own (kernel, expansion), so a per-block
table recovered by least squares reproduces the measured MACs to rounding error.

Printed: the normalised hypervolume NSGA-II reaches after `--nsga2-budget` validations,
and how many validations LINAS needs to reach the same value (per seed and on average).

    python bench/bench_ofa_surrogate.py [--data-dir DIR] [--seeds 10] [--linas-budget 400]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # small models on a shared machine: one thread is fastest

import argparse  # noqa: E402
import ast  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _mbv3 import BLOCKS, EXPANDS, KERNELS, UNITS, mbv3_space, ofa_arch  # noqa: E402
from sklearn.ensemble import HistGradientBoostingRegressor  # noqa: E402

from search.problem import Problem  # noqa: E402
from search.results import SearchResult  # noqa: E402
from search.strategies.linas import LINAS  # noqa: E402
from search.strategies.nsga2 import NSGA2Search  # noqa: E402
from supernet.space import Arch, SearchSpace  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parent / "data" / "ofa_mbv3_imagenet"


class Surrogate:
    """Accuracy by gradient-boosted trees on the genes; MACs by an exact per-block table."""

    def __init__(self, space: SearchSpace, data_dir: Path) -> None:
        files = sorted(data_dir.glob("*.csv*"))
        if not files:
            raise FileNotFoundError(f"no *.csv[.gz] measurement tables in {data_dir}")
        frame = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
        archs = [ofa_arch(space, ast.literal_eval(s)) for s in frame["Sub-network"]]
        frame["arch_id"] = [a.arch_id for a in archs]
        by_id = {a.arch_id: a for a in archs}
        table = frame.groupby("arch_id")[["Top-1 Acc (%)", "MACs"]].mean()
        self.space = space
        self.rows, self.unique = len(frame), len(table)
        unique_archs = [by_id[i] for i in table.index]
        genes = np.array([space.encode(a) for a in unique_archs])
        accuracy = table["Top-1 Acc (%)"].to_numpy(float)
        macs = table["MACs"].to_numpy(float)

        self.accuracy_model = HistGradientBoostingRegressor(
            max_iter=400, learning_rate=0.05, random_state=0
        ).fit(genes, accuracy)
        pairs = self._pair_features(genes)
        self.macs_table, *_ = np.linalg.lstsq(pairs, macs, rcond=None)
        self._table = [float(v) for v in self.macs_table[:-1]]
        self.macs_max_rel_error = float(
            max(abs(self.cost(a)["macs"] - m) / m for a, m in zip(unique_archs, macs, strict=True))
        )
        self.accuracy_range = (float(accuracy.min()), float(accuracy.max()))

    def _pair_features(self, genes: np.ndarray) -> np.ndarray:
        """One-hot of each present block's (kernel, expansion) pair, plus a constant."""
        labels = self.space.labels
        cols = []
        for u in range(1, UNITS + 1):
            depth_options = np.array(self.space.decision(f"s{u}_depth").options)
            depth = depth_options[genes[:, labels.index(f"s{u}_depth")]]
            for b in range(1, BLOCKS + 1):
                k = genes[:, labels.index(f"s{u}_b{b}_kernel")]
                e = genes[:, labels.index(f"s{u}_b{b}_expand")]
                onehot = np.zeros((len(genes), 9))
                onehot[np.arange(len(genes)), k * 3 + e] = depth >= b
                cols.append(onehot)
        return np.hstack([*cols, np.ones((len(genes), 1))])

    def validate(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        genes = np.array([self.space.encode(a) for a in archs])
        return [{"accuracy": float(v)} for v in self.accuracy_model.predict(genes)]

    def cost(self, arch: Arch) -> dict[str, float]:
        """MACs from the per-block table (plain Python: LINAS may call it per candidate)."""
        total, column = float(self.macs_table[-1]), 0
        for u in range(1, UNITS + 1):
            depth = arch[f"s{u}_depth"]
            for b in range(1, BLOCKS + 1):
                if depth >= b:
                    k = KERNELS.index(arch[f"s{u}_b{b}_kernel"])
                    e = EXPANDS.index(arch[f"s{u}_b{b}_expand"])
                    total += self._table[column + 3 * k + e]
                column += 9
        return {"macs": total}

    def problem(self, budget: int, ref_accuracy: float | None = None) -> Problem:
        reference = None if ref_accuracy is None else {"accuracy": ref_accuracy}
        return Problem(
            self.space, ("accuracy", "macs"), None, self.validate, self.cost, budget, reference
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--nsga2-budget", type=int, default=1000)
    parser.add_argument("--linas-budget", type=int, default=400)
    parser.add_argument("--generations", type=int, default=400)
    parser.add_argument(
        "--ref-accuracy",
        type=float,
        default=None,
        help="hypervolume reference accuracy in %% (default: the problem's, 0)",
    )
    parser.add_argument("--exact-costs", action="store_true", help="LINAS predict_costs=False")
    args = parser.parse_args()

    t0 = time.perf_counter()
    space = mbv3_space()
    surrogate = Surrogate(space, args.data_dir)
    print(
        f"surrogate: {surrogate.rows} rows ({surrogate.unique} distinct subnets), accuracy "
        f"{surrogate.accuracy_range[0]:.2f}-{surrogate.accuracy_range[1]:.2f} %, MACs table "
        f"max relative error {surrogate.macs_max_rel_error:.1e}, fitted in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    ref = surrogate.problem(1, args.ref_accuracy).reference_point()
    print(
        f"space: {len(space.decisions)} decisions; HV reference: accuracy {-ref[0]:g} %, "
        f"MACs {ref[1] / 1e6:.1f} M (largest subnet); normalised by the box to (100 %, 0)"
    )

    linas = LINAS(generations=args.generations, predict_costs=not args.exact_costs)
    nsga2 = NSGA2Search()
    targets, needed, finals, step_seconds, step_cpu = [], [], [], [], []
    for seed in range(args.seeds):
        t1 = time.perf_counter()
        p_nsga2 = surrogate.problem(args.nsga2_budget, args.ref_accuracy)
        extras = nsga2.run(p_nsga2, np.random.default_rng(seed))
        r_nsga2 = SearchResult.from_problem(p_nsga2, nsga2.name, seed, extras)
        target = r_nsga2.hypervolume_normalised[-1]

        p_linas = surrogate.problem(args.linas_budget, args.ref_accuracy)
        extras = linas.run(p_linas, np.random.default_rng(seed))
        r_linas = SearchResult.from_problem(p_linas, linas.name, seed, extras)
        reach = r_linas.validations_to_reach(target)
        targets.append(target)
        needed.append(reach)
        finals.append(r_linas.hypervolume_normalised[-1])
        step_seconds += extras["step_seconds"]
        step_cpu += [it["step_cpu_seconds"] for it in extras["iterations"]]
        shown = "not reached" if reach is None else str(reach)
        print(
            f"seed {seed}: NSGA-II HV@{p_nsga2.used} = {target:.5f}; LINAS reaches it after "
            f"{shown} validations (HV@{p_linas.used} = {finals[-1]:.5f}); "
            f"{time.perf_counter() - t1:.0f} s",
            flush=True,
        )

    reached = [n for n in needed if n is not None]
    censored = [args.linas_budget if n is None else n for n in needed]
    print(
        f"NSGA-II normalised HV after {args.nsga2_budget} validations: "
        f"mean {statistics.mean(targets):.5f} (min {min(targets):.5f}, max {max(targets):.5f})"
    )
    print(
        f"LINAS validations to reach it: mean {statistics.mean(censored):.1f} "
        f"(reached in {len(reached)}/{len(needed)} seeds; unreached counted as "
        f"{args.linas_budget}), median {statistics.median(censored):.0f}"
    )
    print(f"LINAS normalised HV after {args.linas_budget}: mean {statistics.mean(finals):.5f}")
    print(
        f"LINAS search step: median {statistics.median(step_seconds):.2f} s wall-clock "
        f"({statistics.median(step_cpu):.2f} s CPU), max {max(step_seconds):.2f} s, "
        f"over {len(step_seconds)} steps; "
        f"total {time.perf_counter() - t0:.0f} s"
    )


if __name__ == "__main__":
    main()
