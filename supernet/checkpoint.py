"""What a checkpoint carries besides weights, and how a supernet is rebuilt from it alone.

Every checkpoint holds, under the key `nas`, the supernet's class and constructor arguments,
its space name and the data settings, so search needs nothing from the training config.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import torch

from supernet.errors import CheckpointError
from supernet.protocol import Supernet, as_supernet

FORMAT_VERSION = 1
STATE_PREFIX = "supernet."  # the live weights; a record's `state_prefix` may name others (EMA)


def supernet_record(supernet: Supernet, data_config: dict[str, Any] | None = None) -> dict:
    """The facts needed to rebuild `supernet` (its class, config and space name)."""
    cls = type(supernet)
    return {
        "format": FORMAT_VERSION,
        "supernet_class": f"{cls.__module__}.{cls.__qualname__}",
        "supernet_config": supernet.config(),
        "space": supernet.space.name,
        "data_config": dict(data_config or {}),
    }


def build_supernet(record: dict[str, Any]) -> Supernet:
    """A fresh supernet of the class and configuration named in `record`."""
    module_name, _, class_name = record["supernet_class"].rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise CheckpointError(
            f"checkpoint names supernet class {record['supernet_class']!r}, which cannot be "
            f"imported ({err}); install the extra that provides it"
        ) from None
    return as_supernet(cls(**record["supernet_config"]))


def read_checkpoint(
    path: str | Path, trusted: bool = False, mmap: bool = False
) -> dict[str, Any]:
    """Load a checkpoint file with clear errors for missing, corrupt or foreign files.

    Checkpoints this framework writes hold only tensors and plain data, so they load with
    `torch.load(weights_only=True)`, which runs no code from the file. A file that needs
    more (a foreign or legacy checkpoint holding Python objects) is refused unless `trusted`.
    `mmap` maps tensors instead of reading them (for looking at the `nas` record only).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}; train one with `python train.py` or fix ckpt_path"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=not trusted, mmap=mmap)
    except pickle.UnpicklingError as err:
        if "weights_only" not in str(err):
            raise CheckpointError(
                f"checkpoint {path} is corrupt or unreadable (UnpicklingError); "
                "use another checkpoint, e.g. checkpoints/last.ckpt of the run"
            ) from None
        raise CheckpointError(
            f"checkpoint {path} holds Python objects beyond tensors and plain data, so it was "
            "not written by this framework (or by an older version); loading it runs code from "
            "the file. If you trust it, pass ckpt_trusted=true"
        ) from None
    except Exception as err:  # torch raises many types for damaged files
        raise CheckpointError(
            f"checkpoint {path} is corrupt or unreadable ({err.__class__.__name__}); "
            "use another checkpoint, e.g. checkpoints/last.ckpt of the run"
        ) from None
    if not isinstance(checkpoint, dict) or "nas" not in checkpoint:
        raise CheckpointError(
            f"{path} is not a supernet checkpoint of this framework (no 'nas' record); "
            "point ckpt_path at a checkpoint written by train.py"
        )
    return checkpoint


def supernet_state(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The supernet weights of a checkpoint: those its validation scored (live or EMA)."""
    prefix = checkpoint["nas"].get("state_prefix", STATE_PREFIX)
    return {
        k[len(prefix):]: v
        for k, v in checkpoint.get("state_dict", {}).items()
        if k.startswith(prefix)
    }


def read_record(path: str | Path) -> dict[str, Any]:
    """A checkpoint's `nas` record, without reading its tensors (they are memory-mapped)."""
    return dict(read_checkpoint(path, mmap=True)["nas"])


def load_supernet(
    path: str | Path, expected_space: str | None = None, trusted: bool = False
) -> tuple[Supernet, dict[str, Any]]:
    """Rebuild the supernet of a checkpoint and load its weights.

    Returns the supernet (eval mode) and the checkpoint's `nas` record.
    """
    checkpoint = read_checkpoint(path, trusted=trusted)
    record = checkpoint["nas"]
    if expected_space is not None and record["space"] != expected_space:
        raise CheckpointError(
            f"checkpoint {path} holds a {record['space']!r} supernet, but the "
            f"{expected_space!r} space was asked for; choose a matching supernet= or ckpt_path"
        )
    supernet = build_supernet(record)
    state = supernet_state(checkpoint)
    try:
        supernet.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {path} does not fit its own supernet: {err}") from None
    return supernet.eval(), record
