"""Shared fixtures: Hydra compose API on the project's conf/, outputs in tmp_path, W&B off."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose `config_name` with overrides; outputs go to the test's tmp_path."""

    def _make(config_name: str, *overrides: str) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(
                config_name=config_name, overrides=list(overrides), return_hydra_config=False
            )
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / "run")
            cfg.paths.log_dir = str(tmp_path / "logs")
            cfg.paths.data_dir = str(tmp_path / "data")
        return cfg

    return _make


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Torch on one thread for the test (timings and a shared 2-core machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- a tiny trained checkpoint, shared by every test that needs one (trained once per session)
TINY_TRAIN = (
    "supernet=mobilenetv3_tiny",
    "logger=csv",
    "threads=1",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=6",
    "data.calib_images=128",
    "data.train_size=512",  # a prefix of the default glyph data: seconds to generate
    "data.val_size=128",
    "data.test_size=128",
    "module.num_random_eval=1",
    "recipe.num_random=1",
    "module.warmup_epochs=0",  # 12 steps: a warm-up epoch would leave the loss where it began
)


def compose_in(config_name: str, out: Path, *overrides: str) -> DictConfig:
    """`config_name` composed with overrides, writing to `out` (logs and data beside it)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        cfg.paths.log_dir = str(out.parent)
        cfg.paths.data_dir = str(out.parent / "data")
    return cfg


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    """Train the tiny supernet for two short epochs; return its run dir and final metrics."""
    from supernet.pipeline import train

    root = tmp_path_factory.mktemp("logs")
    out = root / "train" / "runs" / "tiny"
    metrics = train(compose_in("train", out, *TINY_TRAIN))
    return out, metrics


@pytest.fixture(scope="session")
def tiny_ckpt(tiny_run: tuple[Path, dict[str, float]]) -> Path:
    return tiny_run[0] / "checkpoints" / "last.ckpt"
