"""Start training from the weights of a trained supernet (`init_from=CKPT`): fine-tuning.

Every weight of the checkpoint is loaded into the new supernet, which must be of the same
space configuration. Only the classifier may differ, when the new data has another class
count: it keeps its fresh initialisation. Unlike `ckpt_path` (resume), nothing else of the
old run is restored: the optimizer, schedule, epoch and EMA start anew.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from supernet.checkpoint import read_checkpoint, supernet_state
from supernet.errors import CheckpointError
from supernet.protocol import Supernet

log = logging.getLogger(__name__)

# supernet settings that change no weight's shape or meaning: they may differ
_FREE_KEYS = ("num_classes", "dropout")


def _differing(theirs: dict[str, Any], mine: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Config keys whose values differ, except those `_FREE_KEYS` names (by substring)."""
    keys = sorted(set(theirs) | set(mine))
    return {
        k: (theirs.get(k), mine.get(k))
        for k in keys
        if not any(free in k for free in _FREE_KEYS) and theirs.get(k) != mine.get(k)
    }


def _classifier_keys(
    theirs: dict[str, torch.Tensor], mine: dict[str, torch.Tensor], classes: tuple[int, int]
) -> list[str]:
    """Tensors whose shapes differ; each must be a classifier's (first dim = class count)."""
    old, new = classes
    out = []
    for key, tensor in mine.items():
        if key not in theirs or theirs[key].shape == tensor.shape:
            continue
        if old == new or theirs[key].shape[:1] != (old,) or tensor.shape[:1] != (new,):
            raise CheckpointError(
                f"the checkpoint's {key} has shape {tuple(theirs[key].shape)}, this supernet's "
                f"{tuple(tensor.shape)}; only a classifier may differ"
            )
        out.append(key)
    return out


def init_from_checkpoint(supernet: Supernet, path: str | Path, trusted: bool = False) -> list[str]:
    """Load `path`'s supernet weights into `supernet`; returns the re-initialised keys."""
    checkpoint = read_checkpoint(path, trusted=trusted)
    record = checkpoint["nas"]
    cls = type(supernet)
    name = f"{cls.__module__}.{cls.__qualname__}"
    if record["supernet_class"] != name:
        raise CheckpointError(
            f"init_from={path} holds a {record['supernet_class']}, this run builds a {name}; "
            "choose the supernet= it was trained with"
        )
    mine_cfg, theirs_cfg = supernet.config(), dict(record["supernet_config"])
    differ = _differing(theirs_cfg, mine_cfg)
    if differ:
        listed = "; ".join(f"{k}: checkpoint {a}, this run {b}" for k, (a, b) in differ.items())
        raise CheckpointError(
            f"init_from={path} is a supernet of another space configuration ({listed}); "
            "set those supernet/data keys as in the checkpoint"
        )
    theirs = supernet_state(checkpoint)
    mine = supernet.state_dict()
    classes = (int(theirs_cfg.get("num_classes", 0)), int(mine_cfg.get("num_classes", 0)))
    fresh = _classifier_keys(theirs, mine, classes)
    missing = sorted(set(mine) - set(theirs))
    unexpected = sorted(set(theirs) - set(mine))
    if missing or unexpected:
        raise CheckpointError(
            f"init_from={path} does not fit this supernet (missing: {missing[:5]}, "
            f"unexpected: {unexpected[:5]})"
        )
    supernet.load_state_dict({k: v for k, v in theirs.items() if k not in fresh}, strict=False)
    if fresh:
        log.info(
            "init_from %s: classifier re-initialised for %d classes (the checkpoint has %d): %s",
            path, classes[1], classes[0], ", ".join(fresh),
        )
    log.info("init_from %s: loaded %d of %d tensors", path, len(mine) - len(fresh), len(mine))
    return fresh
