"""The LightningModule that trains an image-classification supernet with a recipe.

The supernet is a plain `nn.Module` built outside and passed in. Each step trains the subnets
the recipe plans, accumulating their gradients before one optimizer step (OFA). Validation
scores the largest, the smallest and a fixed set of random subnets after BN recalibration.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any, cast

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from supernet.calibration import recalibrate_bn, resize
from supernet.checkpoint import supernet_record
from supernet.protocol import Supernet, as_supernet
from supernet.recipes import Recipe
from supernet.space import Arch

OptimizerFactory = Callable[..., torch.optim.Optimizer]


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against soft targets (knowledge distillation)."""
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


class SupernetModule(L.LightningModule):
    """Trains a classification supernet.

    Args:
        supernet: the weight-sharing network (with `space`, `set_active`, `export_subnet`).
        recipe: which subnets each step trains (sandwich rule or progressive shrinking).
        optimizer: optimizer factory taking parameter groups (Hydra `_partial_`).
        warmup_epochs: linear learning-rate warm-up before the cosine decay.
        label_smoothing: of the cross-entropy on labels.
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
        warmup_epochs: float = 0.0,
        label_smoothing: float = 0.1,
        kd_ratio: float = 1.0,
        num_random_eval: int = 4,
        eval_seed: int = 0,
        channels_last: bool = True,
        data_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["supernet", "recipe", "optimizer", "data_config"])
        self.automatic_optimization = False
        self.supernet: Supernet = as_supernet(supernet)
        self.recipe = recipe
        self.warmup_epochs = warmup_epochs
        self.label_smoothing = label_smoothing
        self.kd_ratio = kd_ratio
        self.optimizer_factory = optimizer
        self.data_config = data_config or {}
        self.channels_last = channels_last
        if channels_last:
            self.supernet.to(memory_format=torch.channels_last)
        rng = np.random.default_rng(eval_seed)
        space = self.supernet.space
        self.eval_archs: dict[str, Arch] = {"max": space.largest(), "min": space.smallest()}
        for i in range(num_random_eval):
            self.eval_archs[f"random{i}"] = space.sample(rng)
        self._teacher: list[nn.Module] = []  # a list keeps it out of the state dict
        self._eval_nets: dict[str, nn.Module] = {}
        self._correct: dict[str, torch.Tensor] = {}
        self._seen = torch.zeros(())

    # --- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        decay = [p for p in self.supernet.parameters() if p.ndim > 1]
        no_decay = [p for p in self.supernet.parameters() if p.ndim <= 1]
        optimizer = self.optimizer_factory(
            [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
        )
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        per_epoch = total / max(self.trainer.max_epochs or 1, 1)
        warmup = int(self.warmup_epochs * per_epoch)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(total - warmup, 1)
            return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        schedule = {"scheduler": scheduler, "interval": "step"}
        return {"optimizer": optimizer, "lr_scheduler": schedule}

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
        plan = self.recipe.plan(self.supernet.space, self.current_epoch, self.global_step)
        optimizer = cast(L.pytorch.core.optimizer.LightningOptimizer, self.optimizers())
        optimizer.zero_grad(set_to_none=True)
        smoothing = self.label_smoothing
        soft_targets: torch.Tensor | None = None
        first_loss = torch.zeros((), device=self.device)
        for k, arch in enumerate(plan.archs):
            self.supernet.set_active(arch)
            x = self._prepare(images, arch)
            logits = self.supernet(x)
            ce = F.cross_entropy(logits, labels, label_smoothing=smoothing)
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
        optimizer.step()
        cast(torch.optim.lr_scheduler.LRScheduler, self.lr_schedulers()).step()
        self.log("train/loss", first_loss, prog_bar=True, on_step=True, on_epoch=True)
        self.log("train/lr", optimizer.param_groups[0]["lr"], on_step=True, on_epoch=False)

    # --- validation ------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        datamodule: Any = self.trainer.datamodule  # type: ignore[attr-defined]
        calibration = datamodule.calibration_loader()
        self._eval_nets = {}
        for name, arch in self.eval_archs.items():
            net = self.supernet.export_subnet(arch).to(self.device)
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
        if self._teacher:
            record["teacher_state"] = self._teacher[0].state_dict()
        checkpoint["nas"] = record

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("nas", {}).get("teacher_state")
        if state is not None:
            self._make_teacher(state)
