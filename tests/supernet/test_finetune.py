"""Fine-tuning (`init_from`): every weight loads except a classifier of another class count."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from supernet.checkpoint import STATE_PREFIX, supernet_record
from supernet.errors import CheckpointError
from supernet.finetune import init_from_checkpoint
from supernet.mobilenetv3 import MobileNetV3Supernet

TINY = {"num_classes": 10, "in_channels": 3, "kernel_sizes": (3, 5), "expand_ratios": (3,),
        "depths": (1, 2), "resolutions": (12, 16), "stage_channels": (8, 8, 8, 8, 8),
        "head_channels": (16, 16)}
CLASSIFIER = {"head.classifier.weight", "head.classifier.bias"}


def _net(seed: int, **overrides) -> MobileNetV3Supernet:
    torch.manual_seed(seed)
    return MobileNetV3Supernet(**{**TINY, **overrides})


def _save(net: MobileNetV3Supernet, path: Path) -> Path:
    for buffer in net.buffers():  # BN statistics that differ from a fresh network's
        if buffer.is_floating_point():
            buffer.add_(torch.rand_like(buffer))
    state = {STATE_PREFIX + k: v for k, v in net.state_dict().items()}
    torch.save({"state_dict": state, "nas": supernet_record(net)}, path)
    return path


def test_other_class_count_reinitialises_only_the_classifier(tmp_path: Path, caplog) -> None:
    trained = _net(0)
    ckpt = _save(trained, tmp_path / "trained.ckpt")
    fresh = _net(1, num_classes=3)
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    with caplog.at_level(logging.INFO, logger="supernet.finetune"):
        reinitialised = init_from_checkpoint(fresh, ckpt)
    assert set(reinitialised) == CLASSIFIER
    assert fresh.head.classifier.weight.shape == (3, 16)
    for key, value in fresh.state_dict().items():
        if key in CLASSIFIER:
            assert torch.equal(value, before[key])  # its fresh initialisation, untouched
        else:
            assert torch.equal(value, trained.state_dict()[key]), key  # bit for bit
    assert sum("classifier re-initialised for 3 classes (the checkpoint has 10)" in r.message
               for r in caplog.records) == 1


def test_same_class_count_loads_every_weight(tmp_path: Path) -> None:
    trained = _net(0)
    ckpt = _save(trained, tmp_path / "trained.ckpt")
    fresh = _net(1, dropout=0.3)  # dropout changes no weight: allowed
    assert init_from_checkpoint(fresh, ckpt) == []
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, trained.state_dict()[key]), key


def test_another_space_configuration_is_one_clear_error(tmp_path: Path) -> None:
    ckpt = _save(_net(0), tmp_path / "trained.ckpt")
    with pytest.raises(CheckpointError) as err:
        init_from_checkpoint(_net(1, kernel_sizes=(3, 5, 7), resolutions=(12, 20)), ckpt)
    message = str(err.value)
    assert "kernel_sizes: checkpoint [3, 5], this run [3, 5, 7]" in message
    assert "resolutions: checkpoint [12, 16], this run [12, 20]" in message
    assert "num_classes" not in message
