"""The measurement store: every validation and measured cost, keyed by what produced it, in one
SQLite file, so nothing is measured twice or lost, and runs sharing a file share their work.

- `database`: `Store`, the file and its schema;
- `scope`: `Scope`, a store bound to one space, checkpoint and protocol (memoized validation),
  and `Waiting`, how a run waits for what another run is measuring;
- `leases`: claims on measurements in progress, so concurrent runs wait instead of repeating;
- `keys`: settings keys and checkpoint fingerprints;
- `errors`: one message for a damaged, read-only or misplaced store;
- `salvage`: `python -m search.store.salvage OLD NEW` copies a damaged store's readable rows.
"""

from search.store.database import (
    SCHEMA_VERSION,
    BatchFn,
    Metrics,
    Record,
    Store,
    StoreError,
    checkpoint_fingerprint,
    settings_key,
)
from search.store.scope import Scope, Waiting

__all__ = [
    "SCHEMA_VERSION",
    "BatchFn",
    "Metrics",
    "Record",
    "Scope",
    "Store",
    "StoreError",
    "Waiting",
    "checkpoint_fingerprint",
    "settings_key",
]
