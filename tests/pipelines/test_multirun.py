"""Multiruns: a search through the joblib launcher (`hydra/launcher=local`), two jobs in
parallel processes sharing one measurement store; an Optuna sweep of supernet training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from search.store import Store
from tests.conftest import ROOT

TIMEOUT = 300  # seconds for a whole multirun


def _run(cmd: list[str]) -> str:
    """Run a multirun command to its end (its job processes killed with it on a timeout)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"the multirun did not finish in {TIMEOUT} s:\n{output[-3000:]}")
    assert proc.returncode == 0, output[-3000:]
    return output


@pytest.mark.slow
def test_joblib_multirun_writes_one_result_per_job(tiny_ckpt: Path, tmp_path: Path) -> None:
    sweep, store = tmp_path / "sweep", tmp_path / "store.sqlite"
    cmd = [
        sys.executable, "search.py", "-m", "hydra/launcher=local", "strategy=random,evolution",
        "supernet=mobilenetv3_tiny", f"ckpt_path={tiny_ckpt}", f"store_path={store}",
        "hardware=flops", "budget=3", "evaluation.max_val_batches=1", "data.calib_images=128",
        "wandb.enabled=false", f"hydra.sweep.dir={sweep}",
    ]
    output = _run(cmd)
    assert "Joblib.Parallel(n_jobs=2" in output  # the local launcher ran the jobs
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1"]
    strategies = []
    for job in jobs:
        frame = pd.read_csv(job / "results.csv")
        assert len(frame) == 3 and frame["accuracy"].notna().all()
        (strategy,) = set(frame["strategy"])
        strategies.append(strategy)
        summary = json.loads((job / "summary.json").read_text())
        assert summary["measured"] + summary["reused_from_store"] == 3
    assert strategies == ["random", "evolution"]
    archs = {a for job in jobs for a in pd.read_csv(job / "results.csv")["arch_id"]}
    assert len(Store(store)) == len(archs)  # both jobs wrote into the one store


@pytest.mark.slow
def test_optuna_sweep_tunes_training_in_one_group(tmp_path: Path) -> None:
    cmd = [
        sys.executable, "train.py", "hparams_search=supernet_optuna", "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=1", "supernet=mobilenetv3_tiny", "logger=none",
        "threads=1", "trainer.max_epochs=1", "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=1", "data.calib_images=64", "data.train_size=128",
        "data.val_size=64", "data.test_size=64", "module.num_random_eval=0",
        "recipe.num_random=0", "callbacks.progress_bar=null", "trainer.enable_progress_bar=false",
        f"paths.log_dir={tmp_path}",
    ]
    output = _run(cmd)
    (sweep,) = (tmp_path / "train" / "multiruns").iterdir()
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["name"] == "optuna"
    assert set(result["best_params"]) == {"module.optimizer.lr", "module.optimizer.weight_decay",
                                          "module.label_smoothing", "module.warmup_epochs"}
    assert 0.0 <= result["best_value"] <= 100.0  # val/acc_max, returned by train.py
    trials = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in trials] == ["0", "1"], output[-2000:]
    groups = set()
    for trial in trials:
        resolved = yaml.safe_load((trial / "config_resolved.yaml").read_text())
        groups.add(resolved["experiment_name"])
    assert len(groups) == 1 and groups.pop().startswith("supernet_optuna_")
