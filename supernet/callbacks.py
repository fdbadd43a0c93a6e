"""Callbacks that make a resumed training run the run it resumed.

`last.ckpt` is written after every epoch by a checkpoint callback of its own
(`conf/callbacks/default.yaml`: `last_checkpoint`), whatever the monitored metric did, and
`ResumeRandomState` stores the Python, NumPy and torch generators in it, so the data order,
augmentation and dropout after a resume are those of the uninterrupted run.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import lightning as L
import numpy as np
import torch

log = logging.getLogger(__name__)


def collect_random_state() -> dict[str, Any]:
    """The global generators' states, in types that load with `torch.load(weights_only=True)`."""
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    keys = np.asarray(keys)
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_random_state(state: dict[str, Any]) -> None:
    """Set the global generators to `state` (as `collect_random_state` returned it)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class ResumeRandomState(L.Callback):
    """Saves the random generators with every checkpoint and restores them on resume.

    The checkpoint is written after an epoch's validation, and the state is restored as the
    checkpoint is loaded, before the training loop creates its data iterator (which draws
    the worker seed and the shuffling order), so the generators continue exactly where the
    interrupted run's were.
    """

    def state_dict(self) -> dict[str, Any]:
        return {"random_state": collect_random_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = state_dict.get("random_state")
        if state is None:
            log.warning("the checkpoint carries no random state: the resumed run's data order "
                        "and sampling differ from the interrupted run's")
            return
        restore_random_state(state)
        log.info("restored the random state the checkpoint saved")
