"""Two-process DDP on the CPU (gloo) through `train.py trainer=ddp_cpu`, against one process.

Both runs train the tiny supernet with progressive shrinking for two one-epoch phases (the full
network, then kernel, depth and expand with two subnets per step, channels re-sorted and a
frozen teacher), so one comparison covers the sampled subnets, the phase switch, the teacher and
the gradient averaging. The helpers in `ddp_helpers` make the two runs comparable: the single
process reads the global batch the two ranks read together, BatchNorm uses fixed statistics while
training (a sample's loss does not depend on its batch), and rank 1 starts each epoch with
BatchNorm statistics of its own, as rank-local training leaves them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import ROOT

PHASES = (
    "[{name:full,epochs:1,subnets_per_step:1,elastic:{}},"
    "{name:shrink,epochs:1,subnets_per_step:2,sort_channels:true,"
    "elastic:{kernel:[3,5],depth:[1,2],expand:[3,6]}}]"
)
HELPERS = "tests.pipelines.ddp_helpers"
COMMON = (
    "supernet=mobilenetv3_tiny",
    "supernet.dropout=0.0",
    "logger=none",
    "threads=1",
    "data=digits",
    f"data._target_={HELPERS}.GlobalOrderDigits",
    "data.augment=false",
    "data.calib_images=64",
    "data.val_size=64",
    "data.test_size=64",
    "recipe=progressive",
    f"recipe.phases={PHASES}",
    "module.num_random_eval=1",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.enable_progress_bar=false",
    "+trainer.enable_checkpointing=false",
    "callbacks.progress_bar=null",
    "callbacks.model_checkpoint=null",
    f"+callbacks.frozen_bn._target_={HELPERS}.FrozenBatchNorm",
    f"+callbacks.desync._target_={HELPERS}.DesyncBatchNormStats",
    f"+callbacks.record._target_={HELPERS}.RecordRanks",
)
GLOBAL_BATCH = 32
TIMEOUT = 240  # seconds per run; both runs go in parallel


def _start(out: Path, *overrides: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out.mkdir(parents=True, exist_ok=True)
    with (out / "log.txt").open("w") as log:  # the child keeps its own handle
        return subprocess.Popen(
            [sys.executable, "train.py", *COMMON, *overrides, f"+callbacks.record.path={out}",
             f"hydra.run.dir={out / 'run'}"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )


def _finish(proc: subprocess.Popen, out: Path) -> None:
    """Wait for a run; kill its whole process group (the DDP ranks too) when it overruns."""
    try:
        code = proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(f"training did not finish in {TIMEOUT} s:\n{_tail(out)}")
    if code != 0:
        pytest.fail(f"train.py exited with {code}:\n{_tail(out)}")


def _tail(out: Path) -> str:
    return "\n".join((out / "log.txt").read_text().splitlines()[-30:])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """rank0 and rank1 of the DDP run (batch 16 each) and the single run (batch 32)."""
    root = tmp_path_factory.mktemp("ddp")
    ddp = _start(root / "ddp", "trainer=ddp_cpu", "trainer.devices=2",
                 f"data.batch_size={GLOBAL_BATCH // 2}")
    single = _start(root / "single", "trainer=cpu", f"data.batch_size={GLOBAL_BATCH}")
    try:
        _finish(ddp, root / "ddp")
        _finish(single, root / "single")
    finally:
        for proc in (ddp, single):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    found = {
        "rank0": root / "ddp" / "rank0.pt",
        "rank1": root / "ddp" / "rank1.pt",
        "single": root / "single" / "rank0.pt",
    }
    return {name: torch.load(path, weights_only=False) for name, path in found.items()}


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


@pytest.mark.slow
def test_ranks_train_the_same_subnets_in_the_same_phases(runs: dict[str, dict[str, Any]]) -> None:
    r0, r1, single = runs["rank0"], runs["rank1"], runs["single"]
    assert r0["world_size"] == r1["world_size"] == 2 and single["world_size"] == 1
    assert len(r0["steps"]) == len(r1["steps"]) == len(single["steps"]) == 4
    for s0, s1, s in zip(r0["steps"], r1["steps"], single["steps"], strict=True):
        assert s0["archs"] == s1["archs"] == s["archs"], f"step {s0['step']}"
        assert s0["phase"] == s1["phase"] == s["phase"]
        assert s0["teacher"] == s1["teacher"] == s["teacher"]
    assert [s["phase"] for s in r0["steps"]] == [0, 0, 1, 1]
    assert [len(s["archs"]) for s in r0["steps"]] == [1, 1, 2, 2]
    assert len(set(r0["steps"][2]["archs"] + r0["steps"][3]["archs"])) > 1


@pytest.mark.slow
def test_ranks_hold_identical_weights_teacher_and_calibration(
    runs: dict[str, dict[str, Any]],
) -> None:
    r0, r1 = runs["rank0"], runs["rank1"]
    for key in r0["weights"]:
        assert torch.equal(r0["weights"][key], r1["weights"][key]), key
    assert r0["teacher"], "the second phase has no teacher"
    assert _max_diff(r0["teacher"], r1["teacher"]) == 0.0  # rank 0's, despite rank 1's stats
    assert len(r0["calibrated"]) == len(r1["calibrated"]) == 2  # one validation per epoch
    for c0, c1 in zip(r0["calibrated"], r1["calibrated"], strict=True):
        assert _max_diff(c0, c1) == 0.0


@pytest.mark.slow
def test_ddp_equals_one_process_with_the_same_global_batch(
    runs: dict[str, dict[str, Any]],
) -> None:
    r0, r1, single = runs["rank0"], runs["rank1"], runs["single"]
    for s0, s1, s in zip(r0["steps"], r1["steps"], single["steps"], strict=True):
        assert len(s0["labels"]) == len(s1["labels"]) == GLOBAL_BATCH // 2
        assert sorted(s0["labels"] + s1["labels"]) == sorted(s["labels"])  # the same images
        assert s0["image_sum"] + s1["image_sum"] == pytest.approx(s["image_sum"], rel=1e-9)
        assert _max_diff(s0["grads"], s["grads"]) < 1e-5  # averaged over ranks = global batch
    largest = max(float(g.abs().max()) for g in single["steps"][-1]["grads"].values())
    assert largest > 1e-3, "no gradient: nothing was compared"
    assert _max_diff(r0["weights"], single["weights"]) < 1e-5
    assert _max_diff(r0["teacher"], single["teacher"]) < 1e-5
    for c0, c in zip(r0["calibrated"], single["calibrated"], strict=True):
        assert _max_diff(c0, c) < 1e-4
