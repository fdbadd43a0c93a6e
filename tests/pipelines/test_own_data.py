"""Your own images end to end: train on an ImageFolder, search the checkpoint, fine-tune it on
a folder with another class count; a checkpoint of another space is one clear error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import ROOT
from tests.supernet.imagefolder_helpers import make_image_folder

SMALL = (
    "data=imagefolder", "supernet=mobilenetv3_tiny", "data.image_size=16",
    "data.resolutions=[12,16]", "data.batch_size=8", "data.val_size=0.25",
    "data.calib_images=16", "data.calib_batch_size=16", "data.num_workers=0",
)
TRAIN = (*SMALL, "logger=csv", "threads=1", "trainer.max_epochs=1",
         "trainer.enable_progress_bar=false", "module.num_random_eval=1", "recipe.num_random=1")


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    done = subprocess.run([sys.executable, script, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    return done


def _record(ckpt: Path) -> dict:
    return torch.load(ckpt, map_location="cpu", weights_only=False)["nas"]


@pytest.mark.slow
def test_train_search_and_finetune_on_image_folders(tmp_path: Path) -> None:
    pets = make_image_folder(tmp_path / "pets", ("cat", "dog", "fox"), per_class=8)
    run = tmp_path / "train"
    done = _run("train.py", *TRAIN, f"data.root={pets}", f"hydra.run.dir={run}")
    assert done.returncode == 0, done.stderr[-3000:]
    ckpt = run / "checkpoints" / "last.ckpt"
    record = _record(ckpt)
    assert record["data_config"]["num_classes"] == 3  # from the folder, recorded for search
    assert record["supernet_config"]["num_classes"] == 3

    out = tmp_path / "search"
    done = _run("search.py", "supernet=mobilenetv3_tiny", f"ckpt_path={ckpt}", "strategy=random",
                "budget=2", "hardware=flops", "wandb.enabled=false", f"hydra.run.dir={out}",
                f"store_path={tmp_path / 'store.sqlite'}")
    assert done.returncode == 0, done.stderr[-3000:]
    frame = pd.read_csv(out / "results.csv")
    assert len(frame) == 2 and frame["accuracy"].between(0, 100).all()

    birds = make_image_folder(tmp_path / "birds", ("crow", "owl"), per_class=8, seed=1)
    tuned = tmp_path / "tuned"
    done = _run("train.py", *TRAIN, f"data.root={birds}", f"init_from={ckpt}",
                f"hydra.run.dir={tuned}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "classifier re-initialised for 2 classes (the checkpoint has 3)" in done.stdout
    assert _record(tuned / "checkpoints" / "last.ckpt")["supernet_config"]["num_classes"] == 2

    done = _run("train.py", *TRAIN, f"data.root={birds}", f"init_from={ckpt}",
                "supernet.kernel_sizes=[3,5,7]", f"hydra.run.dir={tmp_path / 'bad'}")
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "kernel_sizes: checkpoint [3, 5], this run [3, 5, 7]" in errors[0]
