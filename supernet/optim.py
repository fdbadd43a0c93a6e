"""Optimizer and learning-rate schedule of supernet training, from timm's factories.

`timm.optim.create_optimizer_v2` builds the optimizer (biases and norm weights get no weight
decay) and `timm.scheduler.create_scheduler_v2` the schedule, in epochs, stepped after every
update (`step_update(num_updates)`). A timm schedule is a function of the update count, so a
resumed run, whose count Lightning restores, continues the curve exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from supernet.errors import ConfigError

OptimizerFactory = Callable[[nn.Module], torch.optim.Optimizer]
SchedulerFactory = Callable[..., tuple[Any, int]]


def schedule_length(trainer: Any) -> tuple[int, float]:
    """(updates per epoch, epochs) of a fit: what a per-update schedule spans.

    One update per training batch (the module steps the optimizer once per batch). When
    `max_steps` ends training first, the epoch count is a fraction.
    """
    total = trainer.estimated_stepping_batches  # loads the training data when needed
    if not math.isfinite(total) or total <= 0:
        raise ConfigError("the learning-rate schedule needs a finite run: set trainer.max_epochs "
                          "or trainer.max_steps")
    per_epoch = trainer.num_training_batches
    if not math.isfinite(per_epoch) or per_epoch <= 0:
        per_epoch = total
    per_epoch = int(per_epoch)
    epochs = total // per_epoch if total % per_epoch == 0 else total / per_epoch
    return per_epoch, epochs


def build_optimizer(factory: OptimizerFactory, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer of `model`'s parameters (a partial of `create_optimizer_v2`)."""
    try:
        return factory(model)
    except (TypeError, ValueError, AssertionError) as err:
        raise ConfigError(f"module.optimizer cannot build an optimizer: {err}") from None


def build_scheduler(
    factory: SchedulerFactory | None,
    optimizer: torch.optim.Optimizer,
    updates_per_epoch: int,
    epochs: float,
    warmup_epochs: float,
) -> Any | None:
    """A per-update timm schedule over `epochs` epochs (None: the learning rate stays fixed)."""
    if factory is None:
        return None
    try:
        scheduler, _ = factory(
            optimizer,
            num_epochs=epochs,
            warmup_epochs=warmup_epochs,
            step_on_epochs=False,
            updates_per_epoch=updates_per_epoch,
        )
    except (TypeError, ValueError, AssertionError) as err:
        raise ConfigError(f"module.scheduler cannot build a per-update schedule: {err}") from None
    return scheduler
