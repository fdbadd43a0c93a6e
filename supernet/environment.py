"""What the machine must allow before a run starts: directories it can write, a visible GPU.

Each check runs before any data, model or measurement is built, so a run that cannot finish
fails in a second with one message instead of after minutes of work.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from supernet.errors import DeviceUnavailableError, UnwritablePathError


def check_writable_dir(
    path: str | Path, key: str, create: bool = True, fix: str = "choose a writable directory"
) -> Path:
    """`path` as a directory this process can write into (created when `create`).

    Tries a real write (a temporary file, removed at once): permission bits do not tell
    whether a read-only file system or an administrator's `root` would let it through.
    Without `create`, the nearest existing ancestor is tried and nothing is left behind.
    """
    path = Path(path)
    probe = path
    try:
        if create:
            path.mkdir(parents=True, exist_ok=True)
        else:
            while not probe.exists() and probe != probe.parent:
                probe = probe.parent
        if not probe.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(probe))
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        reason = err.strerror or err.__class__.__name__
        where = err.filename if err.filename and Path(err.filename).parent != probe else probe
        raise UnwritablePathError(
            f"{key}={path}: cannot write there ({reason}: {where}); {fix}"
        ) from None
    return path


def check_writable_file(path: str | Path, key: str) -> Path:
    """A file this process may (re)write atomically: its directory must be writable."""
    path = Path(path)
    if path.is_dir():
        raise UnwritablePathError(f"{key}={path} is a directory; give a file path")
    try:
        check_writable_dir(path.parent, key, create=False)
    except UnwritablePathError:
        raise UnwritablePathError(
            f"{key}={path}: its directory {path.parent} cannot be written to; "
            "choose a path in a directory you can write to"
        ) from None
    return path


def wants_cuda(device: Any) -> bool:
    """Whether a device setting (`cuda`, `cuda:1`, `gpu`, a torch.device) names a GPU."""
    name = str(device).lower()
    return name in {"gpu", "cuda"} or name.startswith("cuda:")


def check_cuda(key: str, value: Any, instead: str) -> None:
    """A setting that asks for a GPU on a machine without one: one message naming it."""
    if wants_cuda(value) and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"{key}={value} needs a CUDA GPU, but none is visible "
            f"(torch.cuda.is_available() is False); use {instead}"
        )
