"""Claims on measurements in progress, so that runs sharing a store share the work.

Before a run measures an arch it writes a claim (owner, expiry time) into the store, in the
same `BEGIN IMMEDIATE` transaction that checks the measurement is still missing. Another run
that wants the same measurement finds the claim and waits for the result instead of measuring
it again. The owner renews its claims from a background thread while it works and deletes
each claim in the transaction that stores its result (or at once when the measurement fails).

A claim is taken over when its lease has run out (a killed or stalled run stopped renewing)
or, sooner, when its owner is a process of this host that no longer exists. Claims never
deadlock: a run waits only when every measurement it still needs in a call is claimed by
another run and it holds no unfinished claim of that call, so a waiting run blocks nobody.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 180.0
HOST = socket.gethostname()

Key = tuple[str, str, str]  # (space, checkpoint, settings_key): one store scope
Renew = Callable[[Callable[[sqlite3.Connection], None]], None]


@dataclass(frozen=True)
class Holder:
    """Who holds a claim another run wants, and until when (epoch seconds)."""

    owner: str
    expires: float


@dataclass
class Claimed:
    """What one claim attempt found, arch ids in the order asked.

    Attributes:
        ready: measurements that exist now (another run finished them): arch id → metrics
            JSON text.
        mine: arch ids claimed now by this run: measure them.
        held: arch ids claimed by other runs whose leases are alive: wait for them.
        taken_over: arch ids this run took over from a dead or expired claim (also in `mine`).
    """

    ready: dict[str, str] = field(default_factory=dict)
    mine: list[str] = field(default_factory=list)
    held: dict[str, Holder] = field(default_factory=dict)
    taken_over: dict[str, Holder] = field(default_factory=dict)


def owner_alive(owner: str) -> bool:
    """False only for an owner that is provably gone: a process of this host that has ended.

    Owners elsewhere (another host) count as alive: only their lease can tell.
    """
    host, _, rest = owner.rpartition(":")[0].rpartition(":")
    if host != HOST or not rest.isdigit():
        return True
    pid = int(rest)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:  # a killed child its parent has not reaped yet is a zombie: gone as well
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class Leases:
    """This store object's claims: owner id, lease length, and the thread that renews them.

    Args:
        seconds: lease length; the owner renews every third of it while it holds claims.
        renew: runs a function in a write transaction of the store (how the thread renews).
        lock: the store's lock (guards the set of held claims with the connection).
    """

    def __init__(self, seconds: float, renew: Renew, lock: threading.RLock) -> None:
        self.seconds = float(seconds)
        self.owner = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._renew_in_store = renew
        self._lock = lock
        self._held: set[tuple[str, str, str, str]] = set()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def held(self) -> int:
        """How many claims this object holds now."""
        return len(self._held)

    # --- SQL, inside the store's write transactions -----------------------------------------
    def claim(
        self, conn: sqlite3.Connection, key: Key, arch_ids: Sequence[str], limit: int | None
    ) -> Claimed:
        """Claim up to `limit` (None: all) of `arch_ids` still missing and unclaimed, in order.

        Runs inside a `BEGIN IMMEDIATE` transaction, so no other run can measure, claim or
        store any of them between the check and the claim.
        """
        out = Claimed()
        now = time.time()
        for arch_id in arch_ids:
            if limit is not None and len(out.mine) >= limit:
                break
            row = conn.execute(
                "SELECT metrics FROM measurements WHERE space = ? AND checkpoint = ? AND "
                "arch_id = ? AND settings_key = ?",
                (key[0], key[1], arch_id, key[2]),
            ).fetchone()
            if row is not None:
                out.ready[arch_id] = row[0]
                continue
            claim = conn.execute(
                "SELECT owner, expires FROM claims WHERE space = ? AND checkpoint = ? AND "
                "arch_id = ? AND settings_key = ?",
                (key[0], key[1], arch_id, key[2]),
            ).fetchone()
            if claim is not None and claim[0] != self.owner:  # its own (a failed release): renew
                holder = Holder(str(claim[0]), float(claim[1]))
                if holder.expires > now and owner_alive(holder.owner):
                    out.held[arch_id] = holder
                    continue
                out.taken_over[arch_id] = holder
            conn.execute(
                "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key[0], key[1], arch_id, key[2], self.owner, now + self.seconds, now),
            )
            out.mine.append(arch_id)
        with self._lock:
            self._held.update((*key, arch_id) for arch_id in out.mine)
        if out.taken_over:
            first = next(iter(out.taken_over.values()))
            why = "its process has ended" if not owner_alive(first.owner) else (
                f"its lease ran out {now - first.expires:.0f} s ago")
            log.warning(
                "taking over %d measurement(s) claimed by %s: %s (a killed or stalled run)",
                len(out.taken_over), first.owner, why,
            )
        return out

    def release(self, conn: sqlite3.Connection, key: Key, arch_ids: Sequence[str]) -> None:
        """Delete this object's claims on `arch_ids` (stored, or given up after a failure)."""
        conn.executemany(
            "DELETE FROM claims WHERE space = ? AND checkpoint = ? AND arch_id = ? AND "
            "settings_key = ? AND owner = ?",
            [(key[0], key[1], arch_id, key[2], self.owner) for arch_id in arch_ids],
        )
        with self._lock:
            self._held.difference_update((*key, arch_id) for arch_id in arch_ids)

    def renew(self, conn: sqlite3.Connection) -> None:
        """Push the expiry of every claim this object holds a full lease ahead."""
        conn.execute(
            "UPDATE claims SET expires = ? WHERE owner = ?", (time.time() + self.seconds,
                                                              self.owner)
        )

    # --- the renewing thread ---------------------------------------------------------------
    def start(self) -> None:
        """Make sure claims are renewed while any is held (call after claiming)."""
        with self._lock:
            if not self._held or (self._thread is not None and self._thread.is_alive()):
                return
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"lease-renewal-{self.owner}", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            with self._lock:
                if not self._held:
                    self._thread = None
                    return
            try:
                self._renew_in_store(self.renew)
            except Exception as err:  # the next renewal may succeed; the lease is the backstop
                log.warning("could not renew the claims of %s: %s", self.owner, err)

    def stop(self) -> None:
        """Stop renewing (the store is closing; its unfinished claims expire on their own)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._thread = None
