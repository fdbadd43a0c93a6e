"""Why a store cannot be used, said once and clearly, before anything is measured.

A path that can never hold a store (a directory, a read-only file or folder) is refused when
the store opens; a SQLite error is turned into what it means for the user (damaged, read-only,
locked); anything else is a bug and keeps its traceback. A damaged store's message counts its
readable rows and names the command that copies them into a new store (`store_salvage`).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from search.store.salvage import damage_message
from supernet.errors import NASError

# SQLite result codes (the low byte of an extended code) that name what went wrong
_BUSY, _READONLY, _CORRUPT, _CANTOPEN, _NOTADB = 5, 8, 11, 14, 26


class StoreError(NASError):
    """A store that cannot be used: damaged, read-only, newer schema, or another checkpoint's."""


def check_path(path: Path) -> None:
    """Refuse a store path that can never be written, with the reason and the way out."""
    if path.is_dir():
        raise StoreError(f"the store path {path} is a directory; give the path of a file in "
                         f"it instead, e.g. store_path={path / 'measurements.sqlite'}")
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            raise StoreError(
                f"the measurement store {path} is read-only; a search writes every "
                f"measurement and claim into it: make it writable (chmod u+rw {path}) or copy "
                "it to a writable place and point store_path at the copy"
            )
        folder = path.parent
    else:
        folder = next(p for p in (path.parent, *path.parent.parents) if p.exists())
        if not folder.is_dir():
            raise StoreError(f"cannot create the store {path}: {folder} is a file")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(
            f"the measurement store {path} cannot be written: the folder {folder} is read-only "
            "(SQLite keeps its journal beside the store); choose a store_path in a writable "
            "folder"
        )


def damaged(path: Path, reason: str) -> StoreError:
    """The error of a damaged store: readable rows and the salvage command."""
    return StoreError(damage_message(path, reason))


def sqlite_error(err: sqlite3.Error, path: Path, timeout: float) -> Exception:
    """The `StoreError` a SQLite error means for the user; other errors (bugs) unchanged."""
    code = getattr(err, "sqlite_errorcode", -1) & 0xFF
    text = str(err)
    if code in (_CORRUPT, _NOTADB) or "malformed" in text or "not a database" in text:
        return damaged(path, text)
    if code == _READONLY or "readonly" in text:
        return StoreError(f"the measurement store {path} is read-only ({text}); make it "
                          "writable or point store_path at a writable copy")
    if code == _BUSY or "locked" in text:
        return StoreError(f"the measurement store {path} stayed locked by another process for "
                          f"{timeout:g} s; is a process stuck on it? ({text})")
    if code == _CANTOPEN:
        return StoreError(f"cannot open the measurement store {path} ({text})")
    return err
