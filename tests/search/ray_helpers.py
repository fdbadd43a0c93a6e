"""Test-only evaluator for Ray workers: dies or hangs once on a chosen subnet, logs every
measurement."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from search.evaluation.images import ClassificationEvaluator
from supernet.space import Arch


class FaultyEvaluator(ClassificationEvaluator):
    """A worker fault the first time it measures `fault_on` (a marker file remembers):
    `die` kills its own process mid-batch, `hang` sleeps longer than any task timeout.
    Every measurement it completes is logged as `arch_id pid`."""

    def __init__(
        self, *args: Any, fault: str, fault_on: str, marker: str, log: str, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if fault not in ("die", "hang"):
            raise ValueError(f"fault must be 'die' or 'hang', got {fault!r}")
        self.fault, self.fault_on = fault, fault_on
        self.marker, self.log = Path(marker), Path(log)

    def score(self, arch: Arch) -> dict[str, float]:
        if arch.arch_id == self.fault_on and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            if self.fault == "die":
                os._exit(1)  # mid-batch, without any cleanup, as a killed worker
            time.sleep(120)  # longer than the task timeout: the evaluator must kill this worker
        metrics = super().score(arch)
        with self.log.open("a") as f:
            f.write(f"{arch.arch_id} {os.getpid()}\n")
        return metrics
