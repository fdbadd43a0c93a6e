"""The jobs of one Hydra multirun share one W&B group; an explicit experiment name wins."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import open_dict

from supernet.runtime import wandb_group

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def _hydra(mode: RunMode, sweep_dir: str) -> None:
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("search", return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.mode = mode
        cfg.hydra.sweep.dir = sweep_dir
        cfg.hydra.runtime.output_dir = sweep_dir
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)


def test_multirun_jobs_share_a_group_named_after_the_sweep() -> None:
    try:
        _hydra(RunMode.MULTIRUN, "/runs/multiruns/2026-11-23_20-00-00")
        assert wandb_group("default") == "default-2026-11-23_20-00-00"
        assert wandb_group("ablation") == "ablation"  # an explicit name is kept
        _hydra(RunMode.RUN, "/runs/multiruns/2026-11-23_20-00-00")
        assert wandb_group("default") == "default"
    finally:
        HydraConfig.instance().cfg = None  # type: ignore[assignment]
