"""Run plumbing shared by `train.py` and `search.py`: thread count, the W&B mode and group,
and turning the project's own errors into one `error:` line and exit code 2."""

from __future__ import annotations

import logging
import netrc
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from supernet.errors import NASError

T = TypeVar("T")
EXIT_USER_ERROR = 2
BUG_HINT = (
    "This is a bug in nasframework, not in your input: please report it with the traceback "
    "above and the command line."
)
# a constructor given a key it does not take (`+strategy.no_such_option=1`): a user error
_UNKNOWN_ARGUMENT = re.compile(r"unexpected keyword argument '(\w+)'")


def set_threads(threads: int | None) -> None:
    """Pin the CPU thread count (oversubscribed threads run several times slower)."""
    if threads:
        torch.set_num_threads(int(threads))


def wandb_has_credentials() -> bool:
    """True when an API key is configured (environment variable or `wandb login`'s netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        hosts = netrc.netrc(str(path)).hosts
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return any("wandb" in host for host in hosts)


def wandb_mode(requested: str | None = None) -> str:
    """`online`, `offline` or `disabled`.

    An explicit request (argument, then the `WANDB_MODE` variable) wins; otherwise online
    when an account is configured and offline when not.
    """
    mode = requested or os.environ.get("WANDB_MODE")
    if mode in {"online", "offline", "disabled"}:
        return mode
    if mode == "dryrun":
        return "offline"
    return "online" if wandb_has_credentials() else "offline"


def finish_wandb_run(run: Any, exit_code: int = 0) -> None:
    """Finish a W&B run and wait until its data is on disk (or uploaded).

    `run.finish()` alone can return while W&B's service process is still writing the run's
    file; tearing the service down waits for it, so the run directory is complete when a
    training or search returns (a multirun's next job starts a new service)."""
    import wandb

    run.finish(exit_code=exit_code)
    wandb.teardown()


def wandb_group(group: str | None) -> str | None:
    """The W&B group of a run: the jobs of one Hydra multirun share one group.

    An explicit `experiment_name` is kept; the default name gets the sweep directory's name
    appended in a multirun, so two sweeps never land in the same group.
    """
    if group not in (None, "default"):
        return group
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
    except (ImportError, ValueError):  # not started by Hydra (a test, a notebook)
        return group
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return group
    return f"{group or 'default'}-{Path(hydra_cfg.sweep.dir).name}"


def run_cli(job: Callable[[DictConfig], T], cfg: DictConfig) -> T:
    """Run `job(cfg)`; a `NASError` becomes `error: <message>` on stderr and exit code 2.

    So does a config group option whose object refuses its settings: Hydra wraps what the
    constructor raised (a `NASError`, or the `TypeError` of an option it does not take) in an
    `InstantiationException`; the message names the group and the reason. Any other exception
    is a bug: it keeps its traceback, followed by a line asking for a report.
    """
    try:
        return job(cfg)
    except NASError as err:
        _fail(job, str(err))
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, NASError):
            _fail(job, f"{_config_key(err)}: {cause}")
        unknown = _UNKNOWN_ARGUMENT.search(str(cause)) if isinstance(cause, TypeError) else None
        if unknown:
            key = _config_key(err)
            _fail(job, f"{key}: {key}.{unknown.group(1)} is not a setting of this option; "
                       f"see the configuration reference for the keys of {key}")
        _report_bug()
        raise
    except Exception:
        _report_bug()
        raise


def _config_key(err: InstantiationException) -> str:
    """The config node Hydra failed to instantiate (`full_key: strategy` in its message)."""
    for line in str(err).splitlines():
        if line.strip().startswith("full_key:"):
            return line.split(":", 1)[1].strip() or "config"
    return "config"


def _report_bug() -> None:
    print(BUG_HINT, file=sys.stderr)


def _fail(job: Callable[..., object], message: str) -> NoReturn:
    logging.getLogger(job.__module__).error("%s", message)
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)
