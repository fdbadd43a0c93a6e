"""Where validations run: `evaluation.device`, checked once with a clear message."""

from __future__ import annotations

import torch

from supernet.errors import ConfigError


def evaluation_device(device: str | torch.device) -> torch.device:
    """`evaluation.device` as a torch device; one clear error when CUDA is asked but absent."""
    try:
        found = torch.device("cuda" if str(device).lower() == "gpu" else device)
    except RuntimeError:
        raise ConfigError(f"evaluation.device={device!r} is no device; use cpu or cuda") from None
    if found.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"evaluation.device={device} needs a CUDA GPU, none is visible "
            "(torch.cuda.is_available() is False); use evaluation.device=cpu"
        )
    return found
