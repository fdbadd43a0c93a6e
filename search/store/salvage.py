"""What survives of a damaged measurement store, copied into a new one.

    python -m search.store.salvage OLD.sqlite NEW.sqlite

OLD is only read, never written: immutably when no write-ahead log lies beside it, read-only
otherwise (so rows still in the log are read too). A damaged page stops the scan of a table,
so each table is read from both ends: only the rows on the damaged pages are lost. A row whose
metrics or info are not JSON is skipped and named. NEW must not exist; it receives every
readable measurement, the settings they were measured with and the checkpoint OLD is bound to.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supernet.errors import NASError

COMMAND = "python -m search.store.salvage"
MEASUREMENT_COLUMNS = ("space", "checkpoint", "arch_id", "settings_key", "metrics", "info",
                       "created")


@dataclass
class Survey:
    """The readable content of a store file and what could not be read."""

    measurements: list[tuple[Any, ...]] = field(default_factory=list)  # MEASUREMENT_COLUMNS
    settings: list[tuple[Any, ...]] = field(default_factory=list)  # (settings_key, settings)
    meta: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # one line per unreadable row
    damaged: str | None = None  # why part of a table could not be read (its rows are lost)


def survey(path: str | Path) -> Survey:
    """Read every readable row of the store at `path`, without writing to it."""
    path = Path(path).resolve()
    mode = "mode=ro" if Path(f"{path}-wal").exists() else "immutable=1"
    conn = sqlite3.connect(f"{path.as_uri()}?{mode}", uri=True)
    out = Survey()
    try:
        rows, out.damaged = _scan(conn, "measurements", MEASUREMENT_COLUMNS, 4)
        settings, damaged_settings = _scan(conn, "settings", ("settings_key", "settings"), 1)
        meta, _ = _scan(conn, "meta", ("key", "value"), 1)
    finally:
        conn.close()
    out.damaged = out.damaged or damaged_settings
    for row in rows:
        why = _unreadable(row[4], "metrics", dict) or _unreadable(row[5], "info", dict)
        if why is None and not isinstance(row[6], (int, float)):
            why = "its time stamp is not a number"
        if why is None:
            out.measurements.append(row)
        else:
            out.skipped.append(f"{row[0]} {row[2]} [settings {row[3]}]: {why}")
    for row in settings:
        why = _unreadable(row[1], "settings", dict)
        if why is None:
            out.settings.append(row)
        else:
            out.skipped.append(f"settings {row[0]}: {why}")
    out.meta = {str(k): str(v) for k, v in meta}
    return out


def _scan(
    conn: sqlite3.Connection, table: str, columns: Sequence[str], n_key: int
) -> tuple[list[tuple[Any, ...]], str | None]:
    """The rows of `table` read in key order, then (after an error) from the other end."""
    names = ", ".join(columns)
    ascending = ", ".join(columns[:n_key])
    descending = ", ".join(f"{c} DESC" for c in columns[:n_key])
    rows: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    try:
        for row in conn.execute(f"SELECT {names} FROM {table} ORDER BY {ascending}"):
            rows[row[:n_key]] = row
        return list(rows.values()), None
    except sqlite3.DatabaseError as err:
        problem = str(err)
    try:
        for row in conn.execute(f"SELECT {names} FROM {table} ORDER BY {descending}"):
            if row[:n_key] in rows:
                break
            rows[row[:n_key]] = row
    except sqlite3.DatabaseError:
        pass
    return sorted(rows.values(), key=lambda r: tuple(map(str, r[:n_key]))), problem


def _unreadable(text: Any, what: str, kind: type) -> str | None:
    """Why a JSON column cannot be used (None: it can)."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as err:
        return f"its {what} column is not JSON ({err})"
    return None if isinstance(value, kind) else f"its {what} column is not a JSON {kind.__name__}"


def suggested_target(path: Path) -> Path:
    """A free file name beside `path` for its salvaged rows."""
    for n in range(1, 1000):
        tag = "salvaged" if n == 1 else f"salvaged{n}"
        target = path.with_name(f"{path.stem}.{tag}{path.suffix or '.sqlite'}")
        if not target.exists():
            return target
    return path.with_name(f"{path.name}.salvaged")


def damage_message(path: str | Path, reason: str) -> str:
    """The one message a damaged store gives: readable rows and the command to save them."""
    path = Path(path).absolute()
    try:
        found = survey(path)
    except (sqlite3.Error, OSError):
        found = Survey()
    if not found.measurements:
        return (f"{path} is not a usable measurement store ({reason}) and none of its "
                "measurements is readable: point store_path at another file (this one is "
                "left as it is)")
    target = suggested_target(path)
    lost = []
    if found.skipped:
        lost.append(f"{len(found.skipped)} unreadable row(s) will be skipped")
    if found.damaged:
        lost.append("rows on its damaged pages are lost")
    return (
        f"the measurement store {path} is damaged ({reason}); {len(found.measurements)} of its "
        f"measurements are readable{' (' + ', '.join(lost) + ')' if lost else ''}. Copy them "
        f"into a new store with `{COMMAND} {shlex.quote(str(path))} "
        f"{shlex.quote(str(target))}` and use that one (store_path={target}, or move it over "
        "this file); this file is left as it is"
    )


def salvage(old: str | Path, new: str | Path) -> Survey:
    """Copy every readable row of the store `old` into the new store `new`."""
    from search.store.database import SCHEMA_VERSION, Store, StoreError  # (search.store imports us)

    old, new = Path(old), Path(new)
    if not old.is_file():
        raise StoreError(f"{old} is not a file" if old.exists() else f"{old}: no such file")
    if new.exists():
        raise StoreError(f"{new} exists; salvage writes a new store and never overwrites a "
                         "file: give another name")
    try:
        found = survey(old)
    except (sqlite3.Error, OSError) as err:
        raise StoreError(f"cannot read {old} at all ({err}); nothing to salvage") from None
    if int(found.meta.get("schema_version", SCHEMA_VERSION)) > SCHEMA_VERSION:
        raise StoreError(f"{old} was written by a newer version of the framework; salvage it "
                         "with that version")
    if not found.measurements:
        why = found.damaged or "it holds none"
        raise StoreError(f"no measurement of {old} is readable ({why}); no new store written")
    store = Store(new)
    try:
        with store._writing() as conn:
            conn.executemany("INSERT OR IGNORE INTO measurements VALUES (?, ?, ?, ?, ?, ?, ?)",
                             found.measurements)
            conn.executemany("INSERT OR IGNORE INTO settings VALUES (?, ?)", found.settings)
            if "checkpoint" in found.meta:
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('checkpoint', ?)",
                             (found.meta["checkpoint"],))
    finally:
        store.close()
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n")[0])
    parser.add_argument("old", help="the damaged store (only read)")
    parser.add_argument("new", help="the store to create with its readable rows")
    args = parser.parse_args(argv)
    try:
        found = salvage(args.old, args.new)
    except NASError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"read {len(found.measurements)} measurements from {args.old}")
    if found.damaged:
        print(f"part of it is damaged ({found.damaged}): the rows on damaged pages are lost")
    if found.skipped:
        print(f"skipped {len(found.skipped)} unreadable row(s):")
        for line in found.skipped:
            print(f"  {line}")
    bound = f", bound to checkpoint {found.meta['checkpoint'][:12]}" if (
        "checkpoint" in found.meta) else ""
    print(f"wrote {len(found.measurements)} measurements into {args.new}{bound}")
    print(f"{args.old} is left as it is; use the new store with store_path={args.new} "
          "(or move it over the old file)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
