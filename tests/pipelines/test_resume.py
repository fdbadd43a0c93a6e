"""Exact resume: a run killed mid-epoch and resumed from last.ckpt is the uninterrupted run."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT
from tests.pipelines.conftest import TINY_TRAIN

RUN = [
    *(o for o in TINY_TRAIN if not o.startswith(("trainer.max_epochs", "trainer.limit_train"))),
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=12",
    "trainer.enable_progress_bar=false",
]


def _train(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "1"}
    return subprocess.Popen(
        [sys.executable, "train.py", *RUN, f"hydra.run.dir={out}",
         f"paths.data_dir={out.parent}/data", *extra],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


def _epoch_metrics(*run_dirs: Path) -> dict[int, dict[str, float]]:
    """Per epoch: the epoch-level metrics (validation and epoch-mean training loss)."""
    out: dict[int, dict[str, float]] = {}
    for run_dir in run_dirs:
        for path in run_dir.glob("csv/version_*/metrics.csv"):
            for row in csv.DictReader(path.open()):
                values = {k: float(v) for k, v in row.items()
                          if v and (k.startswith("val/") or k == "train/loss_epoch")}
                if values:
                    out.setdefault(int(row["epoch"]), {}).update(values)
    return out


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.slow
def test_killed_and_resumed_run_equals_uninterrupted_run(tmp_path: Path) -> None:
    whole = _train(tmp_path / "whole")
    killed_dir = tmp_path / "killed"
    killed = _train(killed_dir)
    last = killed_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 600
    while not last.exists():  # epoch 0 is complete once last.ckpt appears
        assert killed.poll() is None, killed.stderr.read() if killed.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 0
    assert 2 not in _epoch_metrics(killed_dir), "the run ended before it was killed"

    resumed_dir = tmp_path / "resumed"
    resumed = _train(resumed_dir, f"ckpt_path={last}")
    for proc in (whole, resumed):
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-3000:]

    expected = _epoch_metrics(tmp_path / "whole")
    got = _epoch_metrics(resumed_dir)
    assert sorted(expected) == [0, 1, 2]
    # the epochs the resumed run trained (epoch 0's figures died with the killed process, which
    # may not have written its epoch-end training loss before the kill)
    assert sorted(got) == [1, 2]
    assert got == {e: expected[e] for e in (1, 2)}
    final_whole = _weights(tmp_path / "whole" / "checkpoints" / "last.ckpt")
    final_resumed = _weights(resumed_dir / "checkpoints" / "last.ckpt")
    assert final_whole.keys() == final_resumed.keys()
    for key, value in final_whole.items():
        assert torch.equal(value, final_resumed[key]), key
