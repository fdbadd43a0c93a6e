"""Every measurement ever made, in one SQLite file, so nothing is measured twice or lost.

A row is keyed by (space name, checkpoint fingerprint, arch_id, settings key). The settings
key is a digest of the dict describing *how* the figure was made (metric, calibration images
and split for accuracy; device, batch, threads... for latency), so a change of protocol or
checkpoint never returns a stale figure. Every write is its own transaction in WAL mode: a
process killed mid-batch keeps every row it had written.

Runs sharing a store share their work: a measurement in progress is claimed (see
`search.store.leases`), and a run that wants it waits for the result. The file is created by
the first write, so a run that fails before measuring anything leaves no store behind; a
damaged file is reported with the number of readable rows and the command that copies them
into a new store (`search.store.salvage`), and is never modified.

Schema (version 1)::

    measurements(space, checkpoint, arch_id, settings_key,  -- primary key
                 metrics JSON, info JSON, created REAL)
    settings(settings_key PRIMARY KEY, settings JSON)          -- readable form of each key
    meta(key PRIMARY KEY, value)                               -- schema_version, checkpoint
    claims(space, checkpoint, arch_id, settings_key,        -- primary key
           owner, expires REAL, claimed REAL)                  -- measurements in progress
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.store.errors import StoreError, check_path, damaged, sqlite_error
from search.store.keys import canonical_json, checkpoint_fingerprint, settings_key
from search.store.leases import DEFAULT_LEASE_SECONDS, Claimed, Leases
from supernet.space import Arch

if TYPE_CHECKING:
    from search.store.scope import Scope

__all__ = ["SCHEMA_VERSION", "Record", "Store", "StoreError", "checkpoint_fingerprint",
           "settings_key"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS measurements (
    space TEXT NOT NULL,
    checkpoint TEXT NOT NULL,
    arch_id TEXT NOT NULL,
    settings_key TEXT NOT NULL,
    metrics TEXT NOT NULL,
    info TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (space, checkpoint, arch_id, settings_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS settings (settings_key TEXT PRIMARY KEY, settings TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS claims (
    space TEXT NOT NULL, checkpoint TEXT NOT NULL, arch_id TEXT NOT NULL,
    settings_key TEXT NOT NULL, owner TEXT NOT NULL, expires REAL NOT NULL,
    claimed REAL NOT NULL, PRIMARY KEY (space, checkpoint, arch_id, settings_key)
) WITHOUT ROWID;
"""


Metrics = dict[str, Any]
BatchFn = Callable[[Sequence[Arch]], Iterable[Mapping[str, Any]]]


@dataclass(frozen=True)
class Record:
    """One stored measurement: its metrics and how/when it was made."""

    space: str
    checkpoint: str
    arch_id: str
    settings_key: str
    metrics: Metrics
    info: dict[str, Any]
    created: float


class Store:
    """A SQLite file of measurements, safe to share between runs and processes.

    The file (and its folder) is created by the first write; until then reads find nothing.
    Opening an existing file checks it (damage, schema, checkpoint) and that it is writable,
    so every such problem is one `StoreError` before anything is measured.

    Args:
        path: the database file.
        checkpoint: when given, the store is *bound*: it records this checkpoint fingerprint
            on first use and refuses (`StoreError`) to open for any other one. Use it for a
            run directory's own store; leave it out for a store shared across checkpoints.
        timeout: seconds to wait for another process's write lock.
        lease_seconds: how long a claim on a measurement in progress lasts without renewal
            (renewed every third of it while this object works; see `search.store.leases`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        checkpoint: str | None = None,
        timeout: float = 60.0,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.path = Path(path)
        self.timeout = float(timeout)
        self.bound_checkpoint = checkpoint
        if not float(lease_seconds) > 0:
            raise StoreError(f"the store's lease must be a positive number of seconds, "
                             f"got {lease_seconds} (store_lease_seconds)")
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self.created = False  # this object created the file (see `discard_if_empty`)
        self.leases = Leases(float(lease_seconds), self._in_write, self._lock)
        check_path(self.path)
        if self.path.exists():
            self._connection(create=False)

    # --- connection -------------------------------------------------------------------
    def _connection(self, create: bool) -> sqlite3.Connection | None:
        """The open connection; None when the file does not exist and `create` is False."""
        if self._conn is not None:
            return self._conn
        existed = self.path.exists()
        if not existed and not create:
            return None
        if not existed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as err:
            raise self._error(err) from None
        try:
            if existed:  # before anything is written into a file that may be damaged
                problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check")]
                if problems != ["ok"]:
                    raise damaged(self.path, problems[0])
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            conn.execute("COMMIT")
        except sqlite3.Error as err:
            conn.close()
            raise self._error(err) from None
        except BaseException:
            conn.close()
            raise
        self._conn, self.created = conn, not existed
        try:
            self._check_meta(self.bound_checkpoint)
        except BaseException:
            self._conn = None
            conn.close()
            raise
        return conn

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection | None]:
        """The connection for reads (None: no file yet); SQLite errors become `StoreError`."""
        with self._lock:
            try:
                yield self._connection(create=False)
            except sqlite3.Error as err:
                raise self._error(err) from None

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One `BEGIN IMMEDIATE` transaction, committed when the block ends without error."""
        with self._lock:
            conn = self._connection(create=True)
            assert conn is not None
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as err:
                raise self._error(err) from None

    def _in_write(self, fn: Callable[[sqlite3.Connection], None]) -> None:
        with self._writing() as conn:
            fn(conn)

    def _error(self, err: sqlite3.Error) -> Exception:
        return sqlite_error(err, self.path, self.timeout)

    def _load(self, text: str, what: str) -> Any:
        """A JSON column of a row; an unparsable one means the file is damaged."""
        try:
            return json.loads(text)
        except (TypeError, ValueError) as err:
            raise damaged(self.path, f"a row's {what} is not JSON: {err}") from None

    def _check_meta(self, checkpoint: str | None) -> None:
        version = self._meta_default("schema_version", str(SCHEMA_VERSION))
        if int(version) > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer version (schema {version} > "
                f"{SCHEMA_VERSION}); upgrade the framework or use another store path"
            )
        if checkpoint is None:
            return
        recorded = self._meta_default("checkpoint", checkpoint)
        if recorded != checkpoint:
            raise StoreError(
                f"the store {self.path} holds measurements of checkpoint {recorded[:12]}, "
                f"but this run uses checkpoint {checkpoint[:12]}; measurements of one "
                "checkpoint are not valid for another: start a new run directory, or "
                "delete the store to measure again"
            )

    def close(self) -> None:
        """Close the file (reopened by the next use); unfinished claims expire on their own."""
        self.leases.stop()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def discard_if_empty(self) -> bool:
        """Remove the file if this object created it and it holds no measurement.

        For a run that failed before measuring anything. The file is kept when another
        connection still has it open: SQLite deletes the write-ahead log when the last
        connection closes, so a log left after closing ours means someone else uses the store.
        """
        with self._lock:
            if not self.created or self._conn is None or self.leases.held:
                return False
            try:
                if self._conn.execute("SELECT 1 FROM measurements LIMIT 1").fetchone():
                    return False
            except sqlite3.Error:
                return False
            self._conn.close()
            self._conn, self.created = None, False
            if Path(f"{self.path}-wal").exists():
                return False
            self.path.unlink(missing_ok=True)
            return True

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "checkpoint": self.bound_checkpoint, "timeout": self.timeout,
                "lease_seconds": self.leases.seconds}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["path"], state["checkpoint"], state["timeout"],
            state.get("lease_seconds", DEFAULT_LEASE_SECONDS),
        )

    def __repr__(self) -> str:
        bound = f", checkpoint={self.bound_checkpoint[:12]!r}" if self.bound_checkpoint else ""
        return f"Store({str(self.path)!r}{bound})"

    # --- meta -------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        with self._reading() as conn:
            row = None if conn is None else conn.execute(
                "SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _meta_default(self, key: str, value: str) -> str:
        """The stored value of `key`, writing `value` first when there is none (atomic)."""
        with self._writing() as conn:
            conn.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._writing() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- rows ---------------------------------------------------------------------------
    def get(
        self, space: str, checkpoint: str, arch_id: str, settings: Mapping[str, Any]
    ) -> Metrics | None:
        """The stored metrics of one arch under one protocol, or None."""
        record = self.record(space, checkpoint, arch_id, settings)
        return None if record is None else record.metrics

    def record(
        self, space: str, checkpoint: str, arch_id: str, settings: Mapping[str, Any]
    ) -> Record | None:
        """Like `get`, with the info and timestamp."""
        self._check_checkpoint(checkpoint)
        key = settings_key(settings)
        with self._reading() as conn:
            row = None if conn is None else conn.execute(
                "SELECT metrics, info, created FROM measurements WHERE space = ? AND "
                "checkpoint = ? AND arch_id = ? AND settings_key = ?",
                (space, checkpoint, arch_id, key),
            ).fetchone()
        if row is None:
            return None
        return Record(space, checkpoint, arch_id, key, self._load(row[0], "metrics"),
                      self._load(row[1], "info"), row[2])

    def put(
        self,
        space: str,
        checkpoint: str,
        arch: Arch | str,
        settings: Mapping[str, Any],
        metrics: Mapping[str, Any],
        info: Mapping[str, Any] | None = None,
    ) -> None:
        """Write one measurement in its own transaction (replacing an older one).

        The transaction also deletes this object's claim on it: whoever waits sees the result.
        """
        self._check_checkpoint(checkpoint)
        arch_id = arch if isinstance(arch, str) else arch.arch_id
        full_info = dict(info or {})
        if isinstance(arch, Arch):
            full_info.setdefault("arch", arch.to_dict())
        key = settings_key(settings)
        now = time.time()
        full_info.setdefault("timestamp", now)
        row = (space, checkpoint, arch_id, key, canonical_json(dict(metrics)),
               canonical_json(full_info), now)
        with self._writing() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO settings VALUES (?, ?)", (key, canonical_json(settings))
            )
            conn.execute("INSERT OR REPLACE INTO measurements VALUES (?, ?, ?, ?, ?, ?, ?)", row)
            self.leases.release(conn, (space, checkpoint, key), [arch_id])

    # --- claims (see search.store.leases) --------------------------------------------------
    def claim(
        self,
        space: str,
        checkpoint: str,
        settings: Mapping[str, Any],
        arch_ids: Sequence[str],
        limit: int | None = None,
    ) -> Claimed:
        """Claim up to `limit` of `arch_ids` that are neither stored nor claimed, in order."""
        self._check_checkpoint(checkpoint)
        key = settings_key(settings)
        with self._writing() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO settings VALUES (?, ?)", (key, canonical_json(settings))
            )
            claimed = self.leases.claim(conn, (space, checkpoint, key), arch_ids, limit)
        self.leases.start()
        return claimed

    def release(
        self, space: str, checkpoint: str, settings: Mapping[str, Any], arch_ids: Sequence[str]
    ) -> None:
        """Give up this object's claims on `arch_ids` (their measurement failed)."""
        if arch_ids:
            with self._writing() as conn:
                self.leases.release(conn, (space, checkpoint, settings_key(settings)), arch_ids)

    def _check_checkpoint(self, checkpoint: str) -> None:
        if self.bound_checkpoint is not None and checkpoint != self.bound_checkpoint:
            raise StoreError(
                f"the store {self.path} is bound to checkpoint {self.bound_checkpoint[:12]}; "
                f"it cannot hold measurements of checkpoint {checkpoint[:12]}"
            )

    def __len__(self) -> int:
        with self._reading() as conn:
            if conn is None:
                return 0
            return int(conn.execute("SELECT COUNT(*) FROM measurements").fetchone()[0])

    def rows(
        self,
        space: str | None = None,
        checkpoint: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Flat rows for export (filters optional): keys, settings, metrics, info, created."""
        clauses, params = [], []
        for column, value in (("space", space), ("checkpoint", checkpoint)):
            if value is not None:
                clauses.append(f"m.{column} = ?")
                params.append(value)
        if settings is not None:
            clauses.append("m.settings_key = ?")
            params.append(settings_key(settings))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        query = (
            "SELECT m.space, m.checkpoint, m.arch_id, m.settings_key, s.settings, m.metrics, "
            "m.info, m.created FROM measurements m LEFT JOIN settings s "
            f"ON s.settings_key = m.settings_key {where} ORDER BY m.created"
        )
        with self._reading() as conn:
            fetched = [] if conn is None else conn.execute(query, params).fetchall()
        return [
            {
                "space": r[0],
                "checkpoint": r[1],
                "arch_id": r[2],
                "settings_key": r[3],
                "settings": self._load(r[4], "settings") if r[4] else {},
                "metrics": self._load(r[5], "metrics"),
                "info": self._load(r[6], "info"),
                "created": r[7],
            }
            for r in fetched
        ]

    # --- caching helpers -------------------------------------------------------------------
    def scope(self, space: str, checkpoint: str, settings: Mapping[str, Any]) -> Scope:
        """The part of the store for one (space, checkpoint, settings): get/put by arch."""
        from search.store.scope import Scope

        return Scope(self, space, checkpoint, dict(settings))

    def memoize(
        self,
        fn: BatchFn,
        space: str,
        checkpoint: str,
        settings: Mapping[str, Any],
        batch_size: int | None = 1,
    ) -> Callable[[Sequence[Arch]], list[Metrics]]:
        """Shorthand for `scope(space, checkpoint, settings).memoize(fn, batch_size)`."""
        return self.scope(space, checkpoint, settings).memoize(fn, batch_size)

    def cached(
        self,
        fn: Callable[[Arch], Mapping[str, Any]],
        space: str,
        checkpoint: str,
        settings: Mapping[str, Any],
    ) -> Callable[[Arch], Metrics]:
        """Shorthand for `scope(space, checkpoint, settings).cached(fn)`."""
        return self.scope(space, checkpoint, settings).cached(fn)
