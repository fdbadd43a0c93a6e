"""Entry-point glue: one clear message and a non-zero exit code for user errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

from hydra.errors import InstantiationException
from omegaconf import DictConfig

from supernet.errors import NASError

T = TypeVar("T")
EXIT_USER_ERROR = 2


def run_cli(job: Callable[[DictConfig], T], cfg: DictConfig) -> T:
    """Run `job(cfg)`; a `NASError` becomes `error: <message>` on stderr and exit code 2.

    So does a config group option whose object refuses its settings: Hydra wraps what the
    constructor raised (a `NASError`, or the `ValueError`/`TypeError` of a bad or unknown
    option) in an `InstantiationException`; the message names the group and the reason."""
    try:
        return job(cfg)
    except NASError as err:
        _fail(job, str(err))
    except InstantiationException as err:
        cause = err.__cause__
        if not isinstance(cause, (NASError, ValueError, TypeError)):
            raise
        _fail(job, f"{_config_key(err)}: {cause}")


def _config_key(err: InstantiationException) -> str:
    """The config node Hydra failed to instantiate (`full_key: strategy` in its message)."""
    for line in str(err).splitlines():
        if line.strip().startswith("full_key:"):
            return line.split(":", 1)[1].strip() or "config"
    return "config"


def _fail(job: Callable[..., object], message: str) -> NoReturn:
    logging.getLogger(job.__module__).error("%s", message)
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)
