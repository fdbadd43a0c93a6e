"""How well a latency table predicts measured latency: median absolute percentage error and
Spearman rank correlation over random subnets, each timed whole (its exported network).

The whole networks are timed in the same interleaved session as any chain the table still
needs (`LatencyTableCost.measure`), so when the table is built here its entries and the
end-to-end figures share the machine's conditions; a table that is already complete is
compared with latencies measured now. The conditions (protocol, load average, duration) come
with the figures.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from search.hardware.lookup_table import LatencyTableCost
from search.hardware.meter import HardwareError
from supernet.space import Arch


@dataclass(frozen=True)
class TableValidation:
    """Predicted (table) and measured (whole network) latencies of the same archs, in ms."""

    arch_ids: tuple[str, ...]
    predicted_ms: tuple[float, ...]
    measured_ms: tuple[float, ...]
    offset_ms: float = 0.0
    conditions: dict[str, Any] = field(default_factory=dict)

    def errors(self, with_offset: bool = True) -> np.ndarray:
        """Signed relative errors (predicted − measured) / measured."""
        predicted = np.asarray(self.predicted_ms) - (0.0 if with_offset else self.offset_ms)
        measured = np.asarray(self.measured_ms)
        return (predicted - measured) / measured

    @property
    def median_ape(self) -> float:
        """Median absolute percentage error (percent)."""
        return float(np.median(np.abs(self.errors())) * 100)

    @property
    def spearman(self) -> float:
        return float(spearmanr(self.predicted_ms, self.measured_ms)[0])

    def summary(self) -> dict[str, float]:
        err, raw = self.errors(), self.errors(with_offset=False)
        return {
            "n": len(self.arch_ids),
            "median_ape_pct": self.median_ape,
            "mean_ape_pct": float(np.mean(np.abs(err)) * 100),
            "p90_ape_pct": float(np.quantile(np.abs(err), 0.9) * 100),
            "median_error_pct": float(np.median(err) * 100),
            "spearman": self.spearman,
            "median_ape_without_offset_pct": float(np.median(np.abs(raw)) * 100),
            "offset_ms": self.offset_ms,
            "measured_median_ms": float(np.median(self.measured_ms)),
        }


def validate_table(
    cost: LatencyTableCost,
    n: int = 100,
    seed: int = 1,
    archs: Sequence[Arch] | None = None,
    progress: bool = True,
) -> TableValidation:
    """Compare `cost`'s table with whole-network latencies of `n` random subnets (or `archs`).

    Missing parts are measured first in the same session, from chains of other archs where
    the pool covers them (the validated archs are their own context only for the rest).
    """
    if cost.supernet is None or cost.table is None:
        raise HardwareError("bind the latency table cost model to a supernet before validating it")
    supernet, table = cost.supernet, cost.table
    if archs is None:
        rng = np.random.default_rng(seed)
        archs = [supernet.space.sample(rng) for _ in range(n)]
    archs = list(archs)
    plan = cost.plan(archs)
    own = len({a.arch_id for a in plan} & {a.arch_id for a in archs})
    load_before, started = os.getloadavg(), time.perf_counter()
    measured = cost.measure(plan, whole_of=archs, progress=progress)
    seconds = time.perf_counter() - started
    predicted = [cost.latency_ms(a) for a in archs]
    offset_key = cost.offset_key()
    offset = table.entries[offset_key] if offset_key else 0.0
    conditions = {
        **cost.settings(),
        "cpus": os.cpu_count(),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "seconds": round(seconds, 1),
        "table_entries": len(table),
        "chains_measured_with_validation": len(plan),
        "validated_archs_used_as_context": own,
    }
    return TableValidation(
        tuple(a.arch_id for a in archs),
        tuple(predicted),
        tuple(measured),
        offset,
        conditions,
    )
