"""Translation validation under DDP: every rank's translations are gathered, so two processes
report the BLEU and loss of one process on the same weights."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

TINY = (
    "supernet=transformer_tiny", "logger=csv", "threads=1", "trainer.max_epochs=1",
    "trainer.limit_train_batches=2", "trainer.enable_progress_bar=false",
    "data.num_train=200", "data.num_valid=37", "data.num_test=16", "data.max_digits=3",
    "data.max_tokens=400", "data.max_tokens_valid=120",  # several validation batches, odd count
    "module.optimizer.lr=0.0",  # the weights stay at their seeded initialisation in both runs
)


def _val_metrics(run: Path) -> dict[str, float]:
    rows = list(csv.DictReader(next(run.glob("csv/version_*/metrics.csv")).open()))
    return {k: float(v) for r in rows for k, v in r.items() if k.startswith("val/") and v}


@pytest.mark.slow
def test_two_processes_report_the_bleu_of_one(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    procs = {
        name: subprocess.Popen(
            [sys.executable, "train.py", *TINY, *extra, f"hydra.run.dir={tmp_path / name}",
             f"paths.data_dir={tmp_path / 'data' / name}"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        for name, extra in (("one", ()), ("ddp", ("trainer=ddp_cpu", "trainer.devices=2")))
    }
    for proc in procs.values():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    one, ddp = _val_metrics(tmp_path / "one"), _val_metrics(tmp_path / "ddp")
    assert {"val/bleu_max", "val/bleu_min", "val/loss_max"} <= set(one)
    for key in ("val/bleu_max", "val/bleu_min", "val/loss_max", "val/loss_min"):
        assert ddp[key] == pytest.approx(one[key], rel=1e-5), key
