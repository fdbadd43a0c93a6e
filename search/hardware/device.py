"""Latency on a device this machine cannot time (a phone, a board, an edge accelerator):
measure a sample of subnets there, predict the others from them.

1. `python -m search.device_kit --ckpt CKPT --out KIT` writes a *kit* (`search.hardware.kit`):
   a sample of subnets (the largest, the smallest, then random ones) as ONNX graphs,
   `latency.csv` to fill and `measure_onnxruntime.py`, which times the graphs with ONNX
   Runtime on the device and fills it. Any other runtime may fill it instead.
2. `python search.py hardware=device hardware.path=KIT/latency.csv` searches with
   `DeviceLatencyCost`: a subnet of the table keeps its measured latency; any other gets the
   prediction of a Ridge or SVR model fitted on the measured ones (chosen by cross-validation,
   as LINAS chooses its predictors) on the subnet's MACs, parameters and number of active
   decisions (`features=onehot` adds the space's one-hot features).
   The cross-validated rank agreement and error of the predictor go into the log and the
   report, so how far the predicted latencies can be trusted is on record.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import KFold, cross_val_predict

from search.hardware.costs import AnalyticCost, CostModel
from search.hardware.kit import COLUMN, KIT_JSON, RUNNER, TABLE
from search.hardware.meter import HardwareError
from search.predictors import fast_predict, fit_predictor, predictor_family, predictor_quality
from search.store import Store
from supernet.space import Arch, SearchSpace

log = logging.getLogger(__name__)

SEEN = {  # what the predictor sees, per `features`
    "costs": "MACs (by part, where the supernet splits them), parameters and active decisions",
    "onehot": "one-hot decisions, MACs, parameters and active decisions",
}
FEATURES = tuple(SEEN)
POOR_TAU = 0.7  # below this cross-validated Kendall tau the log says to measure more subnets
HOW_TO = (
    "write a kit with `python -m search.device_kit --ckpt CKPT --out KIT`, run "
    f"KIT/{RUNNER} on the device, then pass hardware.path=KIT/{TABLE}"
)


def _option_parser(space: SearchSpace) -> dict[str, dict[str, Any]]:
    """For each decision, its options by their text in a CSV cell."""
    return {d.label: {str(o): o for o in d.options} for d in space.decisions}


def read_latencies(
    path: str | Path, space: SearchSpace, column: str = COLUMN
) -> tuple[list[Arch], np.ndarray, int]:
    """The measured subnets of a latency table, their latencies (ms; the mean where a subnet
    was timed more than once) and how many rows are still unmeasured."""
    path = Path(path)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    labels = [d.label for d in space.decisions]
    missing = [c for c in [column, *labels] if c not in fields]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        shown = ", ".join(missing[:5]) + more
        raise HardwareError(
            f"{path} lacks the column(s) {shown}: a latency table has a `{column}` column and "
            f"one column per decision of the {space.name!r} space ({HOW_TO})"
        )
    options = _option_parser(space)
    measured: dict[Arch, list[float]] = {}
    unmeasured = 0
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        text = (row.get(column) or "").strip()
        if not text:
            unmeasured += 1
            continue
        try:
            ms = float(text)
        except ValueError:
            ms = float("nan")
        if not np.isfinite(ms) or ms <= 0:
            raise HardwareError(f"{path}, line {line}: {column}={text!r} is not a positive number")
        values = {}
        for label in labels:
            cell = (row.get(label) or "").strip()
            if cell not in options[label]:
                raise HardwareError(
                    f"{path}, line {line}: {label}={cell!r} is not an option of the "
                    f"{space.name!r} space ({list(options[label])}); is the table from another "
                    "supernet?"
                )
            values[label] = options[label][cell]
        arch = space.arch(values)
        given = (row.get("arch_id") or "").strip()
        if given and given != arch.arch_id:
            raise HardwareError(
                f"{path}, line {line}: arch_id {given} does not match the row's decisions "
                f"(they make {arch.arch_id}); was the row edited?"
            )
        measured.setdefault(arch, []).append(ms)
    archs = list(measured)
    return archs, np.array([np.mean(measured[a]) for a in archs], dtype=float), unmeasured


class DeviceLatencyCost(CostModel):
    """Latency measured on another device for a kit's subnets, predicted for the others.

    Args:
        path: the latency table (the kit's `latency.csv`, its `latency_ms` column filled on
            the device).
        device: the device's name in reports (default: the name of the table's folder).
        objective: the name of the latency metric (the cost objective).
        column: the table's column of measured milliseconds.
        min_rows: fewest measured subnets the predictor is fitted on.
        folds: cross-validation folds, for the choice of predictor and its reported quality.
        seed: seed of the folds.
        features: what the predictor sees: `costs` (MACs, parameters, active decisions) or
            `onehot` (those and the space's one-hot features: more to fit, so more subnets to
            time; with 30-200 timed subnets of a MobileNetV3 space it ranked held-out ones
            worse, see `bench/bench_device_latency.py`).
        analytic: the MACs/params part (default `AnalyticCost()`).
    """

    def __init__(
        self,
        path: str | None = None,
        device: str | None = None,
        objective: str = COLUMN,
        column: str = COLUMN,
        min_rows: int = 10,
        folds: int = 5,
        seed: int = 0,
        features: str = "costs",
        analytic: AnalyticCost | None = None,
    ) -> None:
        super().__init__()
        if features not in FEATURES:
            raise HardwareError(f"hardware.features={features}: expected one of {list(FEATURES)}")
        self.features = features
        self.path = None if path is None else Path(path)
        self.device = device or (self.path.parent.name if self.path is not None else "device")
        self.objective, self.column = objective, column
        self.min_rows, self.folds, self.seed = int(min_rows), int(folds), int(seed)
        self.analytic = analytic or AnalyticCost()
        self.measured: dict[str, float] = {}
        self.quality: dict[str, float] = {}
        self.family = ""
        self._predict: Any = None
        self._scale = np.ones(3)
        self._digest = ""
        self._folds_used = self.folds

    def check_available(self) -> None:
        if self.path is None:
            raise HardwareError(f"hardware=device needs hardware.path: {HOW_TO}")
        if not self.path.is_file():
            raise HardwareError(f"hardware.path={self.path} does not exist: {HOW_TO}")

    def bind(
        self, supernet: Any, store: Store | None = None, checkpoint: str = ""
    ) -> DeviceLatencyCost:
        """Read the table, check it belongs to the supernet's space and fit the predictor."""
        self.check_available()
        assert self.path is not None
        super().bind(supernet)
        self.analytic.bind(supernet)
        space: SearchSpace = supernet.space
        kit = self.path.with_name(KIT_JSON)
        if kit.is_file():
            made_for = json.loads(kit.read_text()).get("space")
            if made_for and made_for != space.name:
                raise HardwareError(
                    f"{self.path} was written for the {made_for!r} space, but this search runs "
                    f"the {space.name!r} space; write a kit from this supernet"
                )
        archs, latency, unmeasured = read_latencies(self.path, space, self.column)
        if len(archs) < self.min_rows:
            raise HardwareError(
                f"{self.path} holds {len(archs)} measured subnets ({unmeasured} rows still "
                f"empty); the latency predictor needs at least hardware.min_rows="
                f"{self.min_rows}: time more of the kit's models ({RUNNER} goes on where it "
                "stopped)"
            )
        self.measured = {a.arch_id: float(v) for a, v in zip(archs, latency, strict=True)}
        costs = self._costs(archs)
        self._scale = np.maximum(costs.max(axis=0), 1.0)
        X = self._features(archs, costs)
        folds = self._folds_used = min(self.folds, len(archs))
        model = fit_predictor(X, latency, seed=self.seed, folds=folds)
        self.family = predictor_family(model)
        cv = KFold(n_splits=folds, shuffle=True, random_state=self.seed)
        held_out = cross_val_predict(model.best_estimator_, X, latency, cv=cv)
        self.quality = predictor_quality(_Fixed(held_out), X, latency)
        self._predict = fast_predict(model)
        self._digest = hashlib.sha256(
            json.dumps(sorted(self.measured.items())).encode()
        ).hexdigest()[:16]
        log.info(
            "device latency (%s): %d measured subnets%s; %s predictor for the others, "
            "%d-fold cross-validated Kendall tau %.3f, MAPE %.1f %%",
            self.device, len(archs), f", {unmeasured} rows unmeasured" if unmeasured else "",
            self.family, folds, self.quality["kendall_tau"], self.quality["mape"],
        )
        if not self.quality["kendall_tau"] >= POOR_TAU:
            log.warning(
                "the device-latency predictor ranks held-out subnets poorly (Kendall tau "
                "%.3f < %.1f): a search on it follows the predictor's errors; time more "
                "subnets on the device (a larger kit: --count)",
                self.quality["kendall_tau"], POOR_TAU,
            )
        return self

    def _costs(
        self, archs: Sequence[Arch], analytic: Sequence[dict[str, float]] | None = None
    ) -> np.ndarray:
        """MACs, parameters and the number of active decisions (layers, roughly) per arch
        (`analytic`: their analytic costs, when the caller has them). A supernet with
        `macs_parts(arch)` gives its MACs by part instead (a Transformer: encoder, decoder and
        output projection, which a beam search repeats per beam and step, the encoder not)."""
        supernet = self._require_bound()
        space: SearchSpace = supernet.space
        costs = analytic if analytic is not None else [self.analytic(a) for a in archs]
        parts = getattr(supernet, "macs_parts", None)
        rows = []
        for arch, cost in zip(archs, costs, strict=True):
            active = sum(space.is_active(arch, d.label) for d in space.decisions)
            macs = list(parts(arch).values()) if callable(parts) else [cost["macs"]]
            rows.append([*macs, cost["params"], active])
        return np.array(rows, dtype=float)

    def _features(self, archs: Sequence[Arch], costs: np.ndarray) -> np.ndarray:
        X = costs / self._scale
        if self.features == "onehot":
            X = np.hstack([self._require_bound().space.features(list(archs)), X])
        return X

    def settings(self) -> dict[str, Any]:
        return {"hardware": "device", "device": self.device, "table": self._digest,
                "measured": len(self.measured), "predictor": self.family,
                "features": self.features}

    def describe(self) -> str:
        return (
            f"{self.objective}: measured on {self.device} for the {len(self.measured)} subnets "
            f"of {self.path}, predicted for the others by a {self.family} model of their "
            f"{SEEN[self.features]} fitted on them "
            f"({self._folds_used}-fold cross-validated Kendall tau "
            f"{self.quality.get('kendall_tau', float('nan')):.3f}, MAPE "
            f"{self.quality.get('mape', float('nan')):.1f} %)"
        )

    def predict(self, arch: Arch, analytic: dict[str, float] | None = None) -> float:
        """The predictor's latency for `arch` (measured or not; `analytic`: its analytic
        costs, when the caller has them)."""
        if self._predict is None:
            raise HardwareError("DeviceLatencyCost is not bound; call bind(supernet) first")
        costs = self._costs([arch], None if analytic is None else [analytic])
        return float(self._predict(self._features([arch], costs))[0])

    def __call__(self, arch: Arch) -> dict[str, float]:
        out = self.analytic(arch)
        measured = self.measured.get(arch.arch_id)
        out[self.objective] = measured if measured is not None else self.predict(arch, out)
        return out


class _Fixed:
    """Predictions made already, in the shape `predictor_quality` asks a model for."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.values
