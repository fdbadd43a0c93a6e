"""`train(cfg)`: build data, supernet, module, loggers and trainer from the config, then fit."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import lightning as L
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

from supernet.callbacks import ResumeRandomState
from supernet.checkpoint import check_resumable, read_checkpoint
from supernet.distributed import check_launch_environment
from supernet.errors import ConfigError
from supernet.finetune import init_from_checkpoint
from supernet.protocol import Supernet, as_supernet
from supernet.runtime import finish_wandb_run, set_threads, wandb_group, wandb_mode
from supernet.schema import validate_train

log = logging.getLogger(__name__)


def build_loggers(cfg: DictConfig) -> list[Any]:
    """Instantiate every logger of `cfg.logger`; W&B goes offline without an account."""
    loggers = []
    for name, node in (cfg.get("logger") or {}).items():
        if node is None or "_target_" not in node:
            continue
        if node._target_.endswith("WandbLogger"):
            mode = wandb_mode(node.get("mode"))
            if mode == "disabled":
                continue
            settings = cast(dict[str, Any], OmegaConf.to_container(node, resolve=True))
            settings.pop("mode", None)
            settings["offline"] = mode == "offline"
            settings["group"] = wandb_group(settings.get("group"))
            node = OmegaConf.create(settings)
            log.info("W&B logger %s in %s mode", name, mode)
        loggers.append(instantiate(node))
    return loggers


def build_callbacks(cfg: DictConfig) -> list[L.Callback]:
    """The configured callbacks, plus the random-state keeper that makes resume exact.

    `trainer.enable_progress_bar=false` and `trainer.enable_checkpointing=false` drop the
    progress-bar and checkpoint callbacks instead of failing."""
    callbacks = [instantiate(node) for node in (cfg.get("callbacks") or {}).values() if node]
    if cfg.trainer.get("enable_progress_bar") is False:
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    if cfg.trainer.get("enable_checkpointing") is False:
        callbacks = [c for c in callbacks if not isinstance(c, ModelCheckpoint)]
    return [*callbacks, ResumeRandomState()]


def build_datamodule(cfg: DictConfig) -> L.LightningDataModule:
    """The data, set up; `data.num_classes: null` becomes the count the data has, so the
    supernet's `${data.num_classes}` and the checkpoint's data settings carry it."""
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    if "num_classes" in cfg.data and cfg.data.num_classes is None:
        cfg.data.num_classes = datamodule.num_classes
        log.info("data.num_classes=%d, from the data", datamodule.num_classes)
    return datamodule


def build_supernet(cfg: DictConfig, datamodule: L.LightningDataModule) -> Supernet:
    """The supernet of `cfg.supernet`, completed with facts only the data knows (vocabularies)."""
    extra: dict[str, Any] = getattr(datamodule, "supernet_kwargs", dict)()
    return as_supernet(instantiate(cfg.supernet, **extra))


def check_resume(cfg: DictConfig, ckpt_path: str, trusted: bool = False) -> None:
    """The checkpoint to resume fits this run (class, space, epochs): before data is built.
    Settings the data fills in later (`num_classes: null`) are not compared."""
    settings = cast(dict[str, Any], OmegaConf.to_container(cfg.supernet, resolve=True))
    target = get_class(settings.pop("_target_"))
    settings = {k: v for k, v in settings.items() if v is not None}
    check_resumable(read_checkpoint(ckpt_path, trusted=trusted), ckpt_path,
                    f"{target.__module__}.{target.__qualname__}", settings,
                    cfg.trainer.get("max_epochs"))  # fmt: skip


def warn_unfinished_phases(recipe: Any, max_epochs: int | None) -> None:
    """A phased recipe (progressive shrinking) whose phases outlast `trainer.max_epochs` stops
    in an early phase: say so, since the smaller subnets are then never trained."""
    total = getattr(recipe, "total_epochs", None)
    if total is None or max_epochs is None or max_epochs < 0 or max_epochs >= total:
        return
    log.warning("the recipe's phases take %d epochs but trainer.max_epochs=%d: the later "
                "phases will not run (set trainer.max_epochs=%d)", total, max_epochs, total)


def train(cfg: DictConfig) -> dict[str, float]:
    """Train a supernet as configured; return the final logged metrics."""
    validate_train(cfg)  # values, GPU, output directory: before any work
    L.seed_everything(cfg.seed, workers=True)
    set_threads(cfg.get("threads"))
    check_launch_environment(cfg.trainer)  # SLURM / torchrun settings agree
    ckpt_path, init_from = cfg.get("ckpt_path"), cfg.get("init_from")
    if ckpt_path and init_from:
        raise ConfigError("ckpt_path resumes a run and init_from starts a new one from trained "
                          "weights; set only one")
    trusted = bool(cfg.get("ckpt_trusted"))
    if ckpt_path:
        check_resume(cfg, ckpt_path, trusted)
    datamodule = build_datamodule(cfg)
    supernet = build_supernet(cfg, datamodule)
    if init_from:
        init_from_checkpoint(supernet, init_from, trusted=trusted)
    data_config = OmegaConf.to_container(cfg.data, resolve=True)
    recipe = instantiate(cfg.recipe)
    warn_unfinished_phases(recipe, cfg.trainer.get("max_epochs"))
    module = instantiate(
        cfg.module,
        supernet=supernet,
        recipe=recipe,
        **getattr(datamodule, "module_kwargs", dict)(),
    )
    module.data_config = data_config  # not through instantiate: it would build the datamodule
    loggers = build_loggers(cfg)
    sharding = {"use_distributed_sampler": False} if getattr(
        datamodule, "shards_batches", False) else {}  # its own sampler splits the batches
    trainer: L.Trainer = instantiate(
        cfg.trainer, logger=loggers or False, callbacks=build_callbacks(cfg), **sharding
    )
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if trainer.is_global_zero:  # one writer when several processes share the run directory
        (output_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    space = supernet.space
    log.info("space %s: %d decisions, %d layer nodes", space.name, len(space.decisions),
             len(space.nodes))
    try:
        for lg in loggers:
            lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path,
                    weights_only=not trusted)
    finally:
        for lg in loggers:
            if isinstance(lg, WandbLogger) and lg._experiment is not None:
                finish_wandb_run(lg.experiment)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if not metrics:
        raise ConfigError("training produced no metrics; check trainer.max_epochs and the data")
    log.info("final metrics: %s", {k: round(v, 3) for k, v in metrics.items()})
    log.info("run directory: %s", output_dir)
    return metrics
