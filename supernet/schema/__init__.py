"""Typed schemas of the configuration, checked before any work starts.

Each user-facing key has one entry in a schema dataclass: its type, its range or choices and a
one-line help. A bad value is one message naming the key, the value and what is allowed
(`budget=abc: expected an integer ≥ 1`); several bad values are listed in one line. Constructors
check only what involves several settings at once (`tournament ≤ population`); what a single
setting may be is said here and nowhere else.

- `core`: how a field says what it accepts, and how a config node is checked;
- `train`: `train.yaml` and the options of the training groups.

`search.schema` holds the schema of `search.yaml` and of the search groups.
"""

from __future__ import annotations

from omegaconf import DictConfig

from supernet.environment import check_cuda, check_writable_dir
from supernet.schema.core import (
    Rule,
    check_arguments,
    check_config,
    check_group,
    check_node,
    describe,
    keys_help,
    section,
    setting,
    unknown_key,
)
from supernet.schema.train import TRAIN_GROUPS, TRAIN_OPTIONS, TrainConfig

__all__ = [
    "TRAIN_GROUPS",
    "TRAIN_OPTIONS",
    "Rule",
    "TrainConfig",
    "check_arguments",
    "check_config",
    "check_group",
    "check_node",
    "describe",
    "keys_help",
    "section",
    "setting",
    "unknown_key",
    "validate_train",
]


def validate_train(cfg: DictConfig) -> None:
    """Refuse a training config that cannot run: bad values, no GPU, an unwritable output."""
    check_config(cfg, TrainConfig, TRAIN_GROUPS, TRAIN_OPTIONS)
    check_cuda("trainer.accelerator", cfg.trainer.get("accelerator", "cpu"), "trainer=cpu")
    check_writable_dir(cfg.paths.output_dir, "paths.output_dir")
