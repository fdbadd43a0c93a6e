"""Test-only evaluator for Ray workers: dies once on a chosen subnet, logs every measurement."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from search.evaluator import ClassificationEvaluator
from supernet.space import Arch


class DyingEvaluator(ClassificationEvaluator):
    """Kills its own process the first time it measures `die_on` (a marker file remembers)."""

    def __init__(self, *args: Any, die_on: str, marker: str, log: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.die_on, self.marker, self.log = die_on, Path(marker), Path(log)

    def score(self, arch: Arch) -> dict[str, float]:
        if arch.arch_id == self.die_on and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os._exit(1)  # mid-batch, without any cleanup, as a killed worker
        metrics = super().score(arch)
        with self.log.open("a") as f:
            f.write(f"{arch.arch_id} {os.getpid()}\n")
        return metrics


class HangingEvaluator(ClassificationEvaluator):
    """Hangs the first time it measures `hang_on` (a marker file remembers), as a stuck worker."""

    def __init__(self, *args: Any, hang_on: str, marker: str, log: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hang_on, self.marker, self.log = hang_on, Path(marker), Path(log)

    def score(self, arch: Arch) -> dict[str, float]:
        if arch.arch_id == self.hang_on and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            time.sleep(120)  # longer than the task timeout: the evaluator must kill this worker
        metrics = super().score(arch)
        with self.log.open("a") as f:
            f.write(f"{arch.arch_id} {os.getpid()}\n")
        return metrics
