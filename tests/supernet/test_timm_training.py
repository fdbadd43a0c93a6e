"""timm's pieces in supernet training: optimizer and per-update schedule, Mixup, weight EMA."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from timm.data import Mixup
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2

import supernet.module as module_mod
from supernet.callbacks import ResumeRandomState
from supernet.checkpoint import load_supernet
from supernet.data.digits import DigitsDataModule
from supernet.errors import CheckpointError, ConfigError
from supernet.mobilenetv3 import MobileNetV3Supernet
from supernet.module import SupernetModule
from supernet.recipes import RandomSubnet

TINY = {"num_classes": 10, "in_channels": 1, "kernel_sizes": (3, 5), "expand_ratios": (3,),
        "depths": (1, 2), "resolutions": (12,), "stem_stride": 1, "first_unit_stride": 2,
        "stage_channels": (8, 8, 8, 8, 8), "head_channels": (16, 16)}
LR, WARMUP_LR, BATCHES = 0.1, 0.01, 3


@pytest.fixture(autouse=True)
def _one_thread(one_thread: None) -> None:
    """Every test here on one thread (the fixture of tests/conftest.py)."""


def _module(**kwargs) -> SupernetModule:
    torch.manual_seed(0)
    settings = {
        "optimizer": partial(create_optimizer_v2, opt="sgd", lr=LR, momentum=0.9,
                             weight_decay=1e-4),
        "scheduler": partial(create_scheduler_v2, sched="cosine", min_lr=0.0,
                             warmup_lr=WARMUP_LR),
        "warmup_epochs": 1, "num_random_eval": 0, "channels_last": False, **kwargs,
    }
    return SupernetModule(MobileNetV3Supernet(**TINY), RandomSubnet(seed=0), **settings)


def _data(batch_size: int = 16) -> DigitsDataModule:
    return DigitsDataModule(image_size=12, resolutions=(12,), val_size=64, test_size=64,
                            batch_size=batch_size, calib_images=32, calib_batch_size=32)


class LearningRates(L.Callback):
    """The learning rate each update uses."""

    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


def _fit(module: SupernetModule, root: Path, epochs: int, ckpt: Path | None = None,
         batch_size: int = 16, save: bool = False) -> LearningRates:
    """Train; `save`: a checkpoint after every epoch (root/epoch<N>.ckpt), as a run writes."""
    rates = LearningRates()
    callbacks: list[L.Callback] = [rates, ResumeRandomState()]
    if save:
        callbacks.append(ModelCheckpoint(dirpath=root, filename="epoch{epoch}", save_top_k=-1,
                                         auto_insert_metric_name=False))
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=epochs, limit_train_batches=BATCHES, limit_val_batches=0,
        logger=False, enable_checkpointing=save, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=root,
        callbacks=callbacks,
    )
    trainer.fit(module, datamodule=_data(batch_size), ckpt_path=ckpt)
    module.trainer_ = trainer  # type: ignore[attr-defined]
    return rates


def _expected_rate(t: int, total: int) -> float:
    """timm's linear warm-up over the first epoch, then cosine to 0 over the whole run."""
    if t < BATCHES:
        return WARMUP_LR + t * (LR - WARMUP_LR) / BATCHES
    return 0.5 * LR * (1 + math.cos(math.pi * t / total))


def test_optimizer_and_schedule_follow_the_config_per_update(tmp_path: Path) -> None:
    module = _module()
    rates = _fit(module, tmp_path, epochs=2)
    expected = [_expected_rate(t, 2 * BATCHES) for t in range(2 * BATCHES)]
    assert rates.rates == pytest.approx(expected, rel=1e-12)
    optimizer = module.trainer_.optimizers[0]
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["nesterov"]
    for group in optimizer.param_groups:  # timm: no weight decay on biases and norms
        assert all((p.ndim <= 1) == (group["weight_decay"] == 0.0) for p in group["params"])


def test_resume_continues_schedule_and_ema_exactly(tmp_path: Path) -> None:
    whole = _module(ema_decay=0.5)
    whole_rates = _fit(whole, tmp_path / "whole", epochs=2, save=True)
    resumed = _module(ema_decay=0.5)  # as if the run had died after its first epoch
    resumed_rates = _fit(resumed, tmp_path / "resumed", epochs=2,
                         ckpt=tmp_path / "whole" / "epoch0.ckpt")

    assert resumed_rates.rates == whole_rates.rates[BATCHES:]  # the same floats
    assert resumed.trainer_.lr_scheduler_configs[0].scheduler.state_dict() == \
        whole.trainer_.lr_scheduler_configs[0].scheduler.state_dict()
    for key, value in whole.state_dict().items():  # live and EMA weights, bit for bit
        assert torch.equal(resumed.state_dict()[key], value), key
    assert any(k.startswith("ema.module.") for k in whole.state_dict())


def test_ema_weights_trail_the_live_weights_and_are_what_search_scores(tmp_path: Path) -> None:
    module = _module(ema_decay=0.9)
    start = {k: v.clone() for k, v in module.supernet.state_dict().items()}
    _fit(module, tmp_path, epochs=1)
    live, ema = module.supernet.state_dict(), module.ema.module.state_dict()
    # the stem and the head train in every step (blocks only when their subnet has them)
    moved = [k for k, v in live.items()
             if k.startswith(("stem.", "head.")) and v.is_floating_point() and "running" not in k]
    assert moved and all(not torch.equal(live[k], start[k]) for k in moved)
    assert all(not torch.equal(ema[k], live[k]) for k in moved)
    for k in moved:  # between the start and the live weights after 2 averaged updates
        assert (ema[k] - live[k]).abs().max() < (start[k] - live[k]).abs().max() + 1e-6
    assert module.scored_supernet is module.ema.module

    ckpt = tmp_path / "ema.ckpt"
    module.trainer_.save_checkpoint(ckpt)
    loaded, record = load_supernet(ckpt)
    assert record["state_prefix"] == "ema.module."
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, ema[key]), key


def test_resuming_an_ema_run_without_ema_is_a_clear_error(tmp_path: Path) -> None:
    module = _module(ema_decay=0.9)
    _fit(module, tmp_path / "a", epochs=1)
    ckpt = tmp_path / "ema.ckpt"
    module.trainer_.save_checkpoint(ckpt)
    with pytest.raises(CheckpointError, match="module.ema_decay"):
        _fit(_module(), tmp_path / "b", epochs=2, ckpt=ckpt)


def test_mixup_gives_soft_targets_and_the_soft_loss(tmp_path: Path, monkeypatch) -> None:
    seen: list[torch.Tensor] = []
    soft = module_mod.soft_cross_entropy

    def spy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        seen.append(targets.detach().clone())
        return soft(logits, targets)

    monkeypatch.setattr(module_mod, "soft_cross_entropy", spy)
    _fit(_module(), tmp_path / "plain", epochs=1)
    assert not seen  # hard labels: torch's label-smoothed cross-entropy

    module = _module(mixup={"mixup_alpha": 0.8, "cutmix_alpha": 1.0}, label_smoothing=0.1)
    assert isinstance(module.mixup, Mixup)
    assert (module.mixup.label_smoothing, module.mixup.num_classes) == (0.1, 10)
    _fit(module, tmp_path / "mixed", epochs=1, batch_size=15)  # odd: one image is dropped
    assert len(seen) == BATCHES
    for targets in seen:
        assert targets.shape == (14, 10)
        assert torch.allclose(targets.sum(1), torch.ones(14))
        off = 0.1 / 10  # a smoothed one-hot row has one entry above this
        assert ((targets > off + 1e-6).sum(1) >= 2).any(), "no image was mixed"


def test_mixup_settings_are_checked() -> None:
    assert _module(mixup={"mixup_alpha": 0.0, "cutmix_alpha": 0.0}).mixup is None
    with pytest.raises(ConfigError, match="label_smoothing is set for you"):
        _module(mixup={"mixup_alpha": 0.2, "label_smoothing": 0.1})
    with pytest.raises(ConfigError, match="module.mixup"):
        _module(mixup={"mixup_alpha": 0.2, "no_such_option": 1})
    with pytest.raises(ConfigError, match="ema_decay"):
        _module(ema_decay=1.5)
