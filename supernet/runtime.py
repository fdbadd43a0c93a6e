"""Run plumbing shared by `train.py` and `search.py`: thread count, the W&B mode and group,
and turning the project's own errors, and command lines Hydra cannot compose, into one
`error:` line and exit code 2."""

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
from hydra.errors import (
    ConfigCompositionException,
    InstantiationException,
    MissingConfigException,
    OverrideParseException,
)
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from supernet.environment import check_writable_dir
from supernet.errors import NASError, UnwritablePathError
from supernet.schema.core import unknown_key

T = TypeVar("T")
EXIT_USER_ERROR = 2
BUG_HINT = (
    "This is a bug in nasframework, not in your input: please report it with the traceback "
    "above and the command line."
)
# a constructor given a key it does not take (`+strategy.no_such_option=1`): a user error
_UNKNOWN_ARGUMENT = re.compile(r"unexpected keyword argument '(\w+)'")
# what Hydra raises for a command line it cannot turn into a config
_COMPOSITION_ERRORS = (ConfigCompositionException, MissingConfigException, OverrideParseException)
_FROM_JOB = "_raised_in_a_job"  # marks an exception that left `run_cli`: not Hydra's to word


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


class WritableOutputDir(Callback):
    """Hydra callback: a run (or sweep) directory this process cannot write is one `error:`
    line and exit code 2 before Hydra creates it (Hydra's own failure is a traceback)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.sweep.dir")

    @staticmethod
    def _check(config: DictConfig, key: str) -> None:
        try:
            path = OmegaConf.select(config, key)
        except Exception:  # an unresolvable directory: Hydra reports it
            return
        if not path:
            return
        try:
            check_writable_dir(path, key, create=False,
                               fix=f"set {key}=<a writable directory> or paths.log_dir=...")
        except UnwritablePathError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)


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
            _fail(job, unknown_key(_config_key(err), unknown.group(1)))
        _report_bug()
        setattr(err, _FROM_JOB, True)
        raise
    except Exception as err:
        _report_bug()
        setattr(err, _FROM_JOB, True)
        raise


def main_cli(entry: Callable[[], object]) -> None:
    """Run a `@hydra.main` entry point so that a command line Hydra cannot compose into a config
    (a misspelt key or option, a malformed override, a launcher that is not installed) is one
    `error:` line and exit code 2, like every other bad input.

    Hydra itself prints those over several lines and exits 1; with `HYDRA_FULL_ERROR` set it
    raises them instead, so the entry point runs with it set and the errors raised before any
    job starts are worded here. Errors inside a job keep their way out (`run_cli`); a user who
    set `HYDRA_FULL_ERROR` gets Hydra's exceptions as they are.
    """
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        entry()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        entry()
    except _COMPOSITION_ERRORS as err:
        if getattr(err, _FROM_JOB, False):
            raise
        print(f"error: {composition_message(err)}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)


def composition_message(err: Exception) -> str:
    """Hydra's message for a command line it cannot compose, on one line: the options it
    lists joined by commas, the config search path left out, the OmegaConf reason in
    parentheses."""
    parts: list[str] = []
    listing = False
    for raw in str(err).splitlines():
        line = raw.strip()
        if not line or set(line) == {"^"}:  # a caret under the override: named below instead
            continue
        if line.startswith("Config search path"):
            break
        if raw.startswith(("\t", "    ")) and listing:  # an option of a listed group
            parts[-1] += (" " if parts[-1].endswith(":") else ", ") + line
            continue
        listing = line.endswith(":")
        if parts and not parts[-1].endswith((".", ":")):
            parts[-1] += "."
        parts.append(line)
    message = " ".join(parts)
    if isinstance(err, OverrideParseException) and err.override not in message:
        message = f"cannot parse the override {err.override!r}: {message}"
    cause = err.__cause__
    if cause is not None and str(cause).strip():
        reason = str(cause).strip().splitlines()[0]
        if reason not in message:
            message += f" ({reason})"
    return message


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
