"""The LightningModule that trains an image-classification supernet with a recipe.

The supernet is a plain `nn.Module` built outside and passed in. Each step trains the subnets
the recipe plans, accumulating their gradients before one optimizer step (OFA). Validation
scores the largest, the smallest and a fixed set of random subnets after BN recalibration.

The generic ImageNet-recipe pieces come from timm: the optimizer and its per-update schedule
(`supernet.optim`), Mixup/CutMix with its soft-target loss, and an EMA of the supernet's
weights. What timm has no notion of stays here: the subnets of a step, in-place and teacher
distillation, and BN recalibration.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from functools import partial
from typing import Any, cast

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3
from torch import nn

from supernet.calibration import recalibrate_bn, resize
from supernet.checkpoint import STATE_PREFIX, supernet_record
from supernet.data.images import plain_options
from supernet.errors import CheckpointError, ConfigError
from supernet.optim import (
    OptimizerFactory,
    SchedulerFactory,
    build_optimizer,
    build_scheduler,
    schedule_length,
)
from supernet.protocol import Supernet, as_supernet
from supernet.recipes import Recipe
from supernet.space import Arch

log = logging.getLogger(__name__)

EMA_PREFIX = "ema.module."  # where the EMA weights sit in the module's state dict
soft_cross_entropy = SoftTargetCrossEntropy()  # against soft targets: mixed labels, a teacher


class SupernetModule(L.LightningModule):
    """Trains a classification supernet.

    Args:
        supernet: the weight-sharing network (with `space`, `set_active`, `export_subnet`).
        recipe: which subnets each step trains (sandwich rule or progressive shrinking).
        optimizer: called with the supernet, returns its optimizer (a Hydra `_partial_` of
            `timm.optim.create_optimizer_v2`).
        scheduler: called with the optimizer and the run's length, returns a timm schedule
            stepped per update (a `_partial_` of `timm.scheduler.create_scheduler_v2`);
            None: cosine to 0 (timm's defaults).
        warmup_epochs: linear learning-rate warm-up (may be fractional), part of the schedule.
        label_smoothing: of the cross-entropy on labels (through Mixup when mixing is on).
        mixup: keyword arguments of `timm.data.Mixup` (`mixup_alpha`, `cutmix_alpha`, `prob`,
            ...); mixing is on when an alpha is > 0 or `cutmix_minmax` is set.
        ema_decay: decay of an exponential moving average of the supernet's weights
            (`timm.utils.ModelEmaV3`); None: no EMA.
        validate_ema: validate (and let a search score) the EMA weights instead of the live ones.
        kd_ratio: weight of the soft cross-entropy from an external teacher (OFA).
        num_random_eval: random subnets validated each epoch (fixed across epochs).
        eval_seed: seed of those random subnets.
        channels_last: run convolutions in channels-last memory format (faster depthwise).
        data_config: the data settings, stored in checkpoints so search can rebuild the data.
    """

    def __init__(
        self,
        supernet: nn.Module,
        recipe: Recipe,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        warmup_epochs: float = 0.0,
        label_smoothing: float = 0.1,
        mixup: Mapping[str, Any] | None = None,
        ema_decay: float | None = None,
        validate_ema: bool = True,
        kd_ratio: float = 1.0,
        num_random_eval: int = 4,
        eval_seed: int = 0,
        channels_last: bool = True,
        data_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(
            ignore=["supernet", "recipe", "optimizer", "scheduler", "mixup", "data_config"]
        )
        mixup = plain_options(mixup)
        self.hparams["mixup"] = mixup  # plain types: checkpoints load with weights_only
        self.automatic_optimization = False
        self.supernet: Supernet = as_supernet(supernet)
        self.recipe = recipe
        self.warmup_epochs = warmup_epochs
        self.label_smoothing = label_smoothing
        self.kd_ratio = kd_ratio
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler or partial(create_scheduler_v2, sched="cosine")
        self.data_config = data_config or {}
        self.channels_last = channels_last
        if channels_last:
            self.supernet.to(memory_format=torch.channels_last)
        self.mixup = self._make_mixup(mixup)
        self.ema: ModelEmaV3 | None = None
        if ema_decay is not None:
            if not 0.0 < ema_decay < 1.0:
                raise ConfigError(f"module.ema_decay must be in (0, 1) or null, got {ema_decay}")
            self.ema = ModelEmaV3(cast(nn.Module, self.supernet), decay=ema_decay)
            # never run itself (subnets are exported from it), so its mode is the module's
            self.ema.requires_grad_(False).train()
        self.validate_ema = validate_ema
        rng = np.random.default_rng(eval_seed)
        space = self.supernet.space
        self.eval_archs: dict[str, Arch] = {"max": space.largest(), "min": space.smallest()}
        for i in range(num_random_eval):
            self.eval_archs[f"random{i}"] = space.sample(rng)
        self._teacher: list[nn.Module] = []  # a list keeps it out of the state dict
        self._eval_nets: dict[str, nn.Module] = {}
        self._correct: dict[str, torch.Tensor] = {}
        self._seen = torch.zeros(())

    def _make_mixup(self, settings: dict[str, Any]) -> Mixup | None:
        """timm's Mixup/CutMix when an alpha is > 0 (timm's rule), labels smoothed through it."""
        active = (settings.get("mixup_alpha", 0.0) > 0 or settings.get("cutmix_alpha", 0.0) > 0
                  or settings.get("cutmix_minmax") is not None)
        if not active:
            return None
        for key in ("num_classes", "label_smoothing"):
            if key in settings:
                raise ConfigError(f"module.mixup.{key} is set for you (from the data and "
                                  f"module.label_smoothing); remove it")
        num_classes = self.supernet.config().get("num_classes")
        if num_classes is None:
            raise ConfigError(f"module.mixup needs a classifier, and "
                              f"{type(self.supernet).__name__} has no num_classes")
        try:
            return Mixup(**settings, label_smoothing=self.label_smoothing,
                         num_classes=int(num_classes))
        except TypeError as err:
            raise ConfigError(f"module.mixup: {err} (keys are timm.data.Mixup's)") from None

    @property
    def scored_supernet(self) -> Supernet:
        """The weights validation scores: the EMA's when it is on and `validate_ema`."""
        if self.ema is not None and self.validate_ema:
            return cast(Supernet, self.ema.module)
        return self.supernet

    # --- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        optimizer = build_optimizer(self.optimizer_factory, cast(nn.Module, self.supernet))
        per_epoch, epochs = schedule_length(self.trainer)
        scheduler = build_scheduler(
            self.scheduler_factory, optimizer, per_epoch, epochs, self.warmup_epochs
        )
        if scheduler is None:
            return optimizer
        schedule = {"scheduler": scheduler, "interval": "step"}
        return {"optimizer": optimizer, "lr_scheduler": schedule}

    def lr_scheduler_step(self, scheduler: Any, metric: Any | None) -> None:
        """A timm schedule is set from the update count (the training step does it)."""
        scheduler.step_update(self.global_step, metric)

    def _prepare(self, images: torch.Tensor, arch: Arch) -> torch.Tensor:
        images = resize(images, arch.get("resolution"))
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    # --- training ------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        epoch = self.current_epoch
        self.log("train/phase", float(self.recipe.phase_index(epoch)))
        if self.recipe.sorts_channels_at(epoch) and hasattr(self.supernet, "sort_channels"):
            self.supernet.sort_channels(self.recipe.expand_stage(epoch))
            for opt in self._optimizers():
                opt.state.clear()  # momentum buffers follow the old channel order
            if self.ema is not None:  # the average of the old channel order means nothing now
                self.ema.set(cast(nn.Module, self.supernet))
                log.info("channels re-sorted: the weight EMA restarts from the live weights")
        if self.recipe.wants_teacher(epoch) and not self._teacher:
            self._make_teacher()
            self._sync_teacher()
        for teacher in self._teacher:
            teacher.to(self.device)

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        opts = self.optimizers()
        return [o.optimizer for o in (opts if isinstance(opts, list) else [opts])]

    def _make_teacher(self, state: dict[str, torch.Tensor] | None = None) -> None:
        teacher = self.supernet.export_subnet(self.supernet.space.largest())
        if state is not None:
            teacher.load_state_dict(state)
        teacher.to(self.device).eval().requires_grad_(False)
        if self.channels_last:
            teacher.to(memory_format=torch.channels_last)
        self._teacher[:] = [copy.deepcopy(teacher)]

    def _sync_teacher(self) -> None:
        """Give every rank rank 0's teacher: BatchNorm running statistics differ across ranks."""
        if self.trainer.world_size <= 1:
            return
        state = {k: v.detach().cpu() for k, v in self._teacher[0].state_dict().items()}
        self._teacher[0].load_state_dict(self.trainer.strategy.broadcast(state, src=0))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        targets: torch.Tensor | None = None  # soft targets of mixed images
        if self.mixup is not None:
            if images.shape[0] % 2:  # timm mixes image pairs: drop one of an odd batch
                images, labels = images[:-1], labels[:-1]
            images, targets = self.mixup(images, labels)
        plan = self.recipe.plan(self.supernet.space, self.current_epoch, self.global_step)
        optimizer = cast(L.pytorch.core.optimizer.LightningOptimizer, self.optimizers())
        optimizer.zero_grad(set_to_none=True)
        lr = optimizer.param_groups[0]["lr"]  # the rate of this update
        soft_targets: torch.Tensor | None = None
        first_loss = torch.zeros((), device=self.device)
        for k, arch in enumerate(plan.archs):
            self.supernet.set_active(arch)
            x = self._prepare(images, arch)
            logits = self.supernet(x)
            if targets is not None:
                ce = soft_cross_entropy(logits, targets)
            else:
                ce = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
            if plan.external_teacher and self._teacher:
                with torch.no_grad():
                    teacher_probs = F.softmax(self._teacher[0](x), dim=1)
                loss = ce + self.kd_ratio * soft_cross_entropy(logits, teacher_probs)
            elif plan.inplace_distill and k > 0 and soft_targets is not None:
                loss = soft_cross_entropy(logits, soft_targets)
            else:
                loss = ce
            if plan.inplace_distill and k == 0:
                soft_targets = F.softmax(logits.detach(), dim=1)
            if k == 0:
                first_loss = ce.detach()
            self.manual_backward(loss)
        optimizer.step()  # counts the update: global_step is now the number of updates
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            self.lr_scheduler_step(scheduler, None)
        if self.ema is not None:
            self.ema.update(cast(nn.Module, self.supernet), step=self.global_step)
        self.log("train/loss", first_loss, prog_bar=True, on_step=True, on_epoch=True)
        self.log("train/lr", lr, on_step=True, on_epoch=False)

    # --- validation ------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        datamodule: Any = self.trainer.datamodule  # type: ignore[attr-defined]
        calibration = datamodule.calibration_loader()
        self._eval_nets = {}
        source = self.scored_supernet
        for name, arch in self.eval_archs.items():
            net = source.export_subnet(arch).to(self.device)
            if self.channels_last:
                net.to(memory_format=torch.channels_last)
            recalibrate_bn(net, calibration, arch.get("resolution"), self.device)
            self._eval_nets[name] = net.eval()
        self._correct = {name: torch.zeros((), device=self.device) for name in self._eval_nets}
        self._seen = torch.zeros((), device=self.device)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        for name, net in self._eval_nets.items():
            logits = net(self._prepare(images, self.eval_archs[name]))
            self._correct[name] += (logits.argmax(1) == labels).sum()
        self._seen += labels.numel()

    def on_validation_epoch_end(self) -> None:
        strategy = self.trainer.strategy  # every rank saw a shard: add up counts, then divide
        self._correct = {n: strategy.reduce(c, reduce_op="sum") for n, c in self._correct.items()}
        seen = strategy.reduce(self._seen, reduce_op="sum").clamp(min=1)
        acc = {name: 100.0 * c / seen for name, c in self._correct.items()}
        randoms = [a for n, a in acc.items() if n.startswith("random")]
        self.log("val/acc_max", acc["max"], prog_bar=True, sync_dist=True)
        self.log("val/acc_min", acc["min"], prog_bar=True, sync_dist=True)
        if randoms:
            self.log("val/acc_random", torch.stack(randoms).mean(), sync_dist=True)
        self._eval_nets = {}

    # --- checkpoints -----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        record = supernet_record(self.supernet, data_config=self.data_config)
        record["recipe"] = self.recipe.name
        # the weights a search should score: those validation scored
        record["state_prefix"] = EMA_PREFIX if self.scored_supernet is not self.supernet \
            else STATE_PREFIX
        if self._teacher:
            record["teacher_state"] = self._teacher[0].state_dict()
        checkpoint["nas"] = record

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved_ema = any(k.startswith(EMA_PREFIX) for k in checkpoint.get("state_dict", {}))
        if saved_ema != (self.ema is not None):
            raise CheckpointError(
                "the checkpoint was trained "
                + ("with" if saved_ema else "without")
                + " a weight EMA and this run "
                + ("has none" if saved_ema else "has one")
                + "; resume with the module.ema_decay it was trained with"
            )
        state = checkpoint.get("nas", {}).get("teacher_state")
        if state is not None:
            self._make_teacher(state)
