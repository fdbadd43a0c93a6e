"""How a measurement is keyed: a digest of its settings and a fingerprint of the checkpoint.

The settings key is a digest of the dict describing *how* a figure was made, in a canonical
JSON form (sorted keys, tuples as lists, numpy scalars as numbers), so key order and spelling
never split one protocol in two. The checkpoint fingerprint is the SHA-256 of its bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from search.store.errors import StoreError


def canonical_json(value: Any) -> str:
    """The one JSON spelling of a value (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot store {type(value).__name__} in a measurement key or value")


def settings_key(settings: Mapping[str, Any]) -> str:
    """Stable digest of a settings dict (key order does not matter; tuples equal lists)."""
    return hashlib.sha256(canonical_json(dict(settings)).encode()).hexdigest()[:20]


_FINGERPRINTS: dict[tuple[str, int, int], str] = {}


def checkpoint_fingerprint(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (streamed), cached per (path, size, mtime) in this process."""
    p = Path(path).resolve()
    try:
        stat = p.stat()
    except FileNotFoundError:
        raise StoreError(f"cannot fingerprint {p}: no such file") from None
    cache_key = (str(p), stat.st_size, stat.st_mtime_ns)
    if cache_key not in _FINGERPRINTS:
        digest = hashlib.sha256()
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        _FINGERPRINTS[cache_key] = digest.hexdigest()
    return _FINGERPRINTS[cache_key]
