"""The LightningModule that trains a Transformer supernet for translation (HAT).

The supernet is an `nn.Module` built outside and passed in. Each step trains the subnets the
recipe plans (one random SubTransformer for HAT, or the sandwich rule), accumulating their
gradients before one Adam step; subnets come from a generator seeded by (seed, global step),
so every rank trains the same ones. Validation scores the largest and the smallest
SubTransformer: loss (mean token NLL) and corpus BLEU of their detokenised translations.
Checkpoints carry the supernet's constructor arguments and both vocabularies, so a
checkpoint alone rebuilds the model and decodes text.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from supernet.checkpoint import load_supernet, supernet_record
from supernet.data.translation.vocab import Vocabulary
from supernet.errors import CheckpointError, ConfigError
from supernet.recipes import Recipe
from supernet.space import Arch
from supernet.transformer.beam import generate
from supernet.transformer.core import TransformerCore
from supernet.transformer.evaluation import batch_references, corpus_bleu, token_nll
from supernet.transformer.model import TransformerSupernet
from supernet.transformer.space import SPACE_NAME

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SCHEDULES = ("inverse_sqrt", "cosine", "constant")


def lr_factor(step: int, schedule: str, warmup: int, total: int, min_ratio: float) -> float:
    """Learning-rate multiplier: linear warm-up, then inverse square root or cosine decay."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "inverse_sqrt":
        return math.sqrt(max(warmup, 1) / (step + 1))
    if schedule == "cosine":
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


class TranslationModule(L.LightningModule):
    """Trains a `TransformerSupernet`.

    Args:
        supernet: the weight-sharing Transformer.
        recipe: which SubTransformers each step trains (`recipe=random` is HAT's rule).
        optimizer: optimizer factory taking parameter groups (Hydra `_partial_`), e.g. Adam
            with betas (0.9, 0.98).
        src_vocab, tgt_vocab: the datamodule's vocabularies (decoding and checkpoints).
        lr_schedule: `inverse_sqrt`, `cosine` (to `min_lr_ratio` × peak) or `constant`.
        warmup_steps: linear warm-up updates.
        min_lr_ratio: floor of the cosine decay, relative to the peak rate.
        label_smoothing: of the training cross-entropy.
        clip_norm: gradient-norm clipping (0: off).
        beam_size: validation beam (1: greedy).
        len_penalty: beam-search length penalty.
        max_len_a, max_len_b: longest output = a × source length + b.
        bleu_tokenize: sacreBLEU tokenizer (`13a`; `none` for tokenized BLEU).
        compound_split: split hyphenated compounds before BLEU (WMT'14 En-De papers).
        data_config: the data settings, stored in checkpoints so search can rebuild the data.
    """

    def __init__(
        self,
        supernet: nn.Module,
        recipe: Recipe,
        optimizer: OptimizerFactory,
        src_vocab: Vocabulary | None = None,
        tgt_vocab: Vocabulary | None = None,
        lr_schedule: str = "inverse_sqrt",
        warmup_steps: int = 4000,
        min_lr_ratio: float = 0.0,
        label_smoothing: float = 0.1,
        clip_norm: float = 0.0,
        beam_size: int = 1,
        len_penalty: float = 1.0,
        max_len_a: float = 1.2,
        max_len_b: int = 10,
        bleu_tokenize: str = "13a",
        compound_split: bool = False,
        data_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if lr_schedule not in SCHEDULES:
            raise ConfigError(f"module.lr_schedule={lr_schedule!r}; choose one of {SCHEDULES}")
        self.save_hyperparameters(
            ignore=["supernet", "recipe", "optimizer", "src_vocab", "tgt_vocab", "data_config"]
        )
        self.automatic_optimization = False
        if not isinstance(supernet, TransformerSupernet):
            raise ConfigError(
                f"TranslationModule trains a TransformerSupernet, got {type(supernet).__name__}; "
                "use supernet=transformer with module=translation"
            )
        self.supernet = supernet
        self.recipe = recipe
        self.optimizer_factory = optimizer
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.data_config = data_config or {}
        self.lr_schedule, self.warmup_steps, self.min_lr_ratio = (
            lr_schedule,
            warmup_steps,
            min_lr_ratio,
        )
        self.label_smoothing, self.clip_norm = label_smoothing, clip_norm
        self.beam_size, self.len_penalty = beam_size, len_penalty
        self.max_len_a, self.max_len_b = max_len_a, max_len_b
        self.bleu_tokenize, self.compound_split = bleu_tokenize, compound_split
        space = supernet.space
        self.eval_archs: dict[str, Arch] = {"max": space.largest(), "min": space.smallest()}
        self._eval_nets: dict[str, TransformerCore] = {}
        self._stats: dict[str, dict[str, Any]] = {}

    def setup(self, stage: str) -> None:
        if self.tgt_vocab is None:
            dm = getattr(self.trainer, "datamodule", None)
            if dm is not None and getattr(dm, "tgt_vocab", None) is not None:
                self.src_vocab, self.tgt_vocab = dm.src_vocab, dm.tgt_vocab
        if self.tgt_vocab is None or self.src_vocab is None:
            raise ConfigError("TranslationModule needs the datamodule's vocabularies")
        config = self.supernet.config()
        if (len(self.src_vocab), len(self.tgt_vocab)) != (
            config["src_vocab_size"],
            config["tgt_vocab_size"],
        ):
            raise ConfigError(
                f"the supernet was built for vocabularies of {config['src_vocab_size']} / "
                f"{config['tgt_vocab_size']} symbols, the data has {len(self.src_vocab)} / "
                f"{len(self.tgt_vocab)}"
            )

    # --- optimisation -------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        decay = [p for p in self.supernet.parameters() if p.ndim > 1]
        no_decay = [p for p in self.supernet.parameters() if p.ndim <= 1]
        optimizer = self.optimizer_factory(
            [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
        )
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        schedule, warmup, floor = self.lr_schedule, self.warmup_steps, self.min_lr_ratio
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, schedule, warmup, total, floor)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        plan = self.recipe.plan(self.supernet.space, self.current_epoch, self.global_step)
        optimizer = self.optimizers()
        assert not isinstance(optimizer, list)
        optimizer.zero_grad(set_to_none=True)
        pad = self.supernet.pad_index
        mask = batch["target"].ne(pad)
        teacher: torch.Tensor | None = None
        first_loss = torch.zeros((), device=self.device)
        for k, arch in enumerate(plan.archs):
            self.supernet.set_active(arch)
            logits = self.supernet(batch["src"], batch["prev"])
            flat = logits.reshape(-1, logits.shape[-1])
            if plan.inplace_distill and k > 0 and teacher is not None:
                soft = -(teacher * F.log_softmax(flat, dim=-1)).sum(-1)
                loss = soft[mask.reshape(-1)].mean()
            else:
                loss = F.cross_entropy(
                    flat,
                    batch["target"].reshape(-1),
                    ignore_index=pad,
                    label_smoothing=self.label_smoothing,
                )
            if plan.inplace_distill and k == 0:
                teacher = F.softmax(flat.detach(), dim=-1)
            if k == 0:
                first_loss = loss.detach()
            self.manual_backward(loss)
        if self.clip_norm > 0:
            self.clip_gradients(optimizer.optimizer, gradient_clip_val=self.clip_norm)
        optimizer.step()
        scheduler = self.lr_schedulers()
        assert isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler)
        scheduler.step()
        bsz = batch["src"].shape[0]
        self.log(
            "train/loss", first_loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=bsz
        )
        self.log("train/lr", optimizer.param_groups[0]["lr"], on_step=True, on_epoch=False)

    # --- validation and test ------------------------------------------------------------------
    def _start_eval(self) -> None:
        self._eval_nets = {
            name: self.supernet.export_subnet(arch).to(self.device).eval()
            for name, arch in self.eval_archs.items()
        }
        self._stats = {
            n: {"nll": 0.0, "tokens": 0, "hyps": [], "refs": []} for n in self._eval_nets
        }

    def _eval_step(self, batch: dict[str, Any]) -> None:
        assert self.tgt_vocab is not None
        refs = batch_references(batch, self.tgt_vocab)
        for name, net in self._eval_nets.items():
            stats = self._stats[name]
            nll, count = token_nll(net(batch["src"], batch["prev"]), batch["target"], net.pad_index)
            stats["nll"] += float(nll)
            stats["tokens"] += count
            outputs = generate(
                net, batch["src"], self.beam_size, self.len_penalty, self.max_len_a, self.max_len_b
            )
            stats["hyps"] += [self.tgt_vocab.decode(ids) for ids in outputs]
            stats["refs"] += refs

    def _end_eval(self, prefix: str) -> None:
        """Corpus BLEU and token loss of the whole split: under DDP every rank's translations
        are gathered first, so the figures do not depend on the number of processes."""
        for name, stats in self._gathered(self._stats).items():
            loss = stats["nll"] / max(stats["tokens"], 1)
            bleu = corpus_bleu(
                stats["hyps"], stats["refs"], self.bleu_tokenize, self.compound_split
            )
            self.log(f"{prefix}/loss_{name}", loss, prog_bar=name == "max", rank_zero_only=True)
            self.log(f"{prefix}/bleu_{name}", bleu, prog_bar=True, rank_zero_only=True)
        self._eval_nets, self._stats = {}, {}

    def _gathered(self, stats: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Every rank's statistics merged (one process: unchanged)."""
        if self.trainer.world_size <= 1 or not torch.distributed.is_initialized():
            return stats
        parts: list[Any] = [None] * self.trainer.world_size
        torch.distributed.all_gather_object(parts, stats)
        merged: dict[str, dict[str, Any]] = {}
        for part in parts:
            for name, s in part.items():
                m = merged.setdefault(name, {"nll": 0.0, "tokens": 0, "hyps": [], "refs": []})
                m["nll"] += s["nll"]
                m["tokens"] += s["tokens"]
                m["hyps"] += s["hyps"]
                m["refs"] += s["refs"]
        return merged

    def on_validation_epoch_start(self) -> None:
        self._start_eval()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._end_eval("val")

    def on_test_epoch_start(self) -> None:
        self._start_eval()

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch)

    def on_test_epoch_end(self) -> None:
        self._end_eval("test")

    # --- checkpoints --------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        record = supernet_record(self.supernet, data_config=self.data_config)
        record["recipe"] = self.recipe.name
        if self.src_vocab is not None and self.tgt_vocab is not None:
            record["vocab"] = {"src": self.src_vocab.to_state(), "tgt": self.tgt_vocab.to_state()}
        checkpoint["nas"] = record

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resume only into the same dictionaries and the same space (else a clear error)."""
        record = checkpoint.get("nas", {})
        saved = record.get("vocab")
        if saved is not None and self.tgt_vocab is not None and self.src_vocab is not None:
            Vocabulary.from_state(saved["src"]).check_same(self.src_vocab, "source")
            Vocabulary.from_state(saved["tgt"]).check_same(self.tgt_vocab, "target")
        if "supernet_config" in record:
            check_same_supernet(record["supernet_config"], self.supernet.config())


# settings that may change when resuming: they do not change the weights or the space
_RESUMABLE = frozenset({"dropout", "attention_dropout", "scale_dropout"})


def check_same_supernet(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """A checkpoint's supernet must have the configured space, or its weights do not fit."""
    keys = sorted((set(saved) | set(current)) - _RESUMABLE)
    diff = [
        f"{k}: {saved.get(k)} → {current.get(k)}" for k in keys if saved.get(k) != current.get(k)
    ]
    if diff:
        raise CheckpointError(
            "the checkpoint holds another Transformer supernet than the configured one ("
            + "; ".join(diff)
            + "); resume with the supernet settings it was trained with (its "
            "config_resolved.yaml) or start a new run without ckpt_path"
        )


def load_translation_checkpoint(
    path: str | Path,
) -> tuple[TransformerSupernet, Vocabulary, Vocabulary, dict[str, Any]]:
    """Rebuild a trained Transformer supernet and its vocabularies from a checkpoint alone."""
    supernet, record = load_supernet(path, expected_space=SPACE_NAME)
    if "vocab" not in record:
        raise CheckpointError(
            f"checkpoint {path} carries no vocabularies; it was not written by TranslationModule"
        )
    src = Vocabulary.from_state(record["vocab"]["src"])
    tgt = Vocabulary.from_state(record["vocab"]["tgt"])
    assert isinstance(supernet, TransformerSupernet)
    return supernet, src, tgt, record
