"""GPU defaults, checked on the CPU: `trainer=gpu` settings, loaders that pin memory and use
workers on a GPU, digits augmented batch by batch on the device, one message without CUDA."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from supernet.data.augment import random_affine
from supernet.data.digits import DigitsDataModule
from supernet.errors import ConfigError
from supernet.schema import validate_train
from tests.conftest import ROOT


def fake_trainer(device: str, training: bool = True) -> SimpleNamespace:
    """What a datamodule reads of its trainer: the root device and the training flag."""
    strategy = SimpleNamespace(root_device=torch.device(device))
    return SimpleNamespace(strategy=strategy, training=training)


def digits(**kw) -> DigitsDataModule:
    dm = DigitsDataModule(num_workers=None, **kw)
    dm.setup("fit")
    return dm


def test_trainer_gpu_is_bf16_and_autotuned(make_cfg) -> None:
    cfg = make_cfg("train", "trainer=gpu")
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"
    assert cfg.trainer.benchmark is True and cfg.module.channels_last is True
    assert cfg.data.pin_memory is None and cfg.data.num_workers is None
    digits = make_cfg("train", "trainer=gpu", "data=digits")  # augments: on the GPU by default
    assert digits.data.batch_augment is None and digits.data.num_workers is None


def test_trainer_gpu_without_cuda_is_one_clear_error(make_cfg, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="needs a CUDA GPU") as err:
        validate_train(make_cfg("train", "trainer=gpu"))
    assert "use trainer=cpu" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="the message of a machine without CUDA")
def test_train_py_trainer_gpu_without_cuda_exits_with_one_line(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "train.py", "trainer=gpu", "logger=csv", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "needs a CUDA GPU" in errors[0]


def test_loaders_pin_memory_and_use_workers_only_on_a_gpu() -> None:
    dm = digits()
    assert dm.loader_settings() == {
        "num_workers": 0,
        "persistent_workers": False,
        "pin_memory": False,
    }
    dm.trainer = fake_trainer("cuda")
    gpu = dm.loader_settings()
    assert gpu["pin_memory"] is True and gpu["num_workers"] >= 1 and gpu["persistent_workers"]
    explicit = DigitsDataModule(num_workers=0, pin_memory=False)
    explicit.trainer = fake_trainer("cuda")
    assert explicit.loader_settings()["num_workers"] == 0
    assert explicit.loader_settings()["pin_memory"] is False


def test_batch_augmentation_on_a_gpu_replaces_per_image_augmentation() -> None:
    dm = digits()
    assert not dm.augments_batches()
    assert dm.train_dataloader().dataset.transform is not None  # per image on the CPU
    images, labels = next(iter(dm.val_dataloader()))
    dm.trainer = fake_trainer("cuda")
    assert dm.augments_batches()
    assert dm.train_dataloader().dataset.transform is None  # the loader hands plain images
    torch.manual_seed(0)
    out, same = dm.on_after_batch_transfer((images, labels), 0)
    assert out.shape == images.shape and same is labels and not torch.equal(out, images)
    dm.trainer = fake_trainer("cuda", training=False)  # validation batches stay as they are
    assert dm.on_after_batch_transfer((images, labels), 0)[0] is images


def test_random_affine_is_identity_without_motion_and_varies_with_it() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randn(8, 1, 24, 24, generator=g)
    still = random_affine(images, degrees=0.0, translate=(0.0, 0.0), scale=(1.0, 1.0))
    torch.testing.assert_close(still, images)
    moved = random_affine(images, generator=torch.Generator().manual_seed(1))
    again = random_affine(images, generator=torch.Generator().manual_seed(1))
    assert torch.equal(moved, again) and not torch.equal(moved, images)
    differences = (moved - images).flatten(1).abs().sum(1)
    assert (differences > 0).float().mean() > 0.5  # each image gets its own transform
