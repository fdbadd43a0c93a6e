"""Measuring through the store: only what is missing is computed, once, by one run.

`Scope.memoize` wraps a batch measurement function (an evaluator) and `Scope.cached` a
one-arch function (a cost model). Before computing, a run claims what it is about to measure;
what another run has claimed is left to that run and its stored result is used (the run
measures everything else first, then waits). See `search.store.leases` for the claims.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from search.store.database import BatchFn, Metrics, StoreError
from search.store.keys import canonical_json
from search.store.leases import Holder
from supernet.space import Arch

if TYPE_CHECKING:
    from search.store.database import Store

log = logging.getLogger(__name__)

POLL_SECONDS = (0.05, 1.0)  # first and longest sleep between looks at claimed measurements
LOG_EVERY = 30.0  # seconds between "still waiting" lines


class Scope:
    """Measurements of one space, checkpoint and protocol; counts hits and misses.

    `misses` counts what this run measured, `hits` what it found in the store (including
    results it waited for while another run measured them).
    """

    def __init__(
        self, store: Store, space: str, checkpoint: str, settings: Mapping[str, Any]
    ) -> None:
        self.store, self.space, self.checkpoint = store, space, checkpoint
        self.settings = dict(settings)
        self.hits = 0
        self.misses = 0

    def get(self, arch: Arch) -> Metrics | None:
        return self.store.get(self.space, self.checkpoint, arch.arch_id, self.settings)

    def put(self, arch: Arch, metrics: Mapping[str, Any], seconds: float | None = None) -> None:
        info = {} if seconds is None else {"seconds": seconds}
        self.store.put(self.space, self.checkpoint, arch, self.settings, metrics, info)

    def memoize(
        self, fn: BatchFn, batch_size: int | None = 1
    ) -> Callable[[Sequence[Arch]], list[Metrics]]:
        """Wrap a batch function so only archs missing from the store are computed.

        `fn` receives the missing archs in chunks of `batch_size` (None: all at once) and
        returns one metrics dict per arch, in order. Each chunk is claimed before it is
        computed and its results are written before the next chunk starts; if `fn` is a
        generator, each result is written the moment it is yielded, so a killed process
        loses at most the archs it was measuring. Archs another run has claimed are not
        computed: their results are awaited once nothing else is left to do.
        """

        def wrapped(archs: Sequence[Arch]) -> list[Metrics]:
            unique: dict[str, Arch] = {}
            for arch in archs:
                unique.setdefault(arch.arch_id, arch)
            found: dict[str, Metrics] = {}
            todo: list[Arch] = []
            for arch in unique.values():
                value = self.get(arch)
                if value is None:
                    todo.append(arch)
                else:
                    found[arch.arch_id] = value
            self.hits += len(found)
            waiting = Waiting(f"{self.space} measurement(s)")
            while todo:
                claimed = self.store.claim(
                    self.space, self.checkpoint, self.settings, [a.arch_id for a in todo],
                    limit=batch_size or None,
                )
                for arch_id, text in claimed.ready.items():
                    found[arch_id] = self.store._load(text, "metrics")
                    self.hits += 1
                if claimed.mine:
                    waiting.reset()
                    self._measure(fn, [unique[arch_id] for arch_id in claimed.mine], found)
                todo = [a for a in todo if a.arch_id not in found]
                if todo and not claimed.mine:
                    waiting.wait(claimed.held)
            return [dict(found[a.arch_id]) for a in archs]

        wrapped.__wrapped__ = fn  # type: ignore[attr-defined]
        return wrapped

    def _measure(self, fn: BatchFn, chunk: list[Arch], found: dict[str, Metrics]) -> None:
        """Compute a claimed chunk, storing each result as it comes; a failure frees the rest."""
        pending = {arch.arch_id for arch in chunk}
        try:
            for arch, metrics, seconds in _timed(fn, chunk):
                self.put(arch, metrics, seconds)
                pending.discard(arch.arch_id)
                self.misses += 1
                found[arch.arch_id] = json.loads(canonical_json(dict(metrics)))
        except BaseException:
            try:  # others need not wait for the lease: the claims go now
                self.store.release(self.space, self.checkpoint, self.settings, sorted(pending))
                self.store.discard_if_empty()
            except StoreError as err:
                log.warning("could not release claims after a failed measurement: %s", err)
            raise

    def cached(self, fn: Callable[[Arch], Mapping[str, Any]]) -> Callable[[Arch], Metrics]:
        """Wrap a one-arch function (a cost model) so each arch is computed once, ever."""
        batch = self.memoize(lambda archs: [fn(a) for a in archs], batch_size=1)

        def one(arch: Arch) -> Metrics:
            return batch([arch])[0]

        one.__wrapped__ = fn  # type: ignore[attr-defined]
        return one


class Waiting:
    """Sleeps between looks at measurements other runs are making, and says so in the log.

    Args:
        what: what is awaited, as the log names it after a count (`"toy measurement(s)"`).
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.reset()

    def reset(self) -> None:
        self.since: float | None = None
        self.logged = 0.0
        self.delay = POLL_SECONDS[0]

    def wait(self, held: Mapping[str, Holder]) -> None:
        now = time.time()
        if self.since is None or now - self.logged >= LOG_EVERY:
            holder = min(held.values(), key=lambda h: h.expires, default=None)
            owner = "" if holder is None else (
                f" ({holder.owner}; its lease runs {max(holder.expires - now, 0):.0f} s more "
                "unless renewed)")
            waited = "" if self.since is None else f", {now - self.since:.0f} s so far"
            log.info("waiting for %d %s another run is making%s%s; they will be reused, not "
                     "measured again", len(held), self.what, owner, waited)
            self.since = self.since or now
            self.logged = now
        time.sleep(self.delay)
        self.delay = min(self.delay * 2, POLL_SECONDS[1])


def _timed(fn: BatchFn, chunk: Sequence[Arch]) -> Iterator[tuple[Arch, Mapping[str, Any], float]]:
    """Yield (arch, metrics, seconds) as `fn` produces them, with a clear length check."""
    start = time.perf_counter()
    results = fn(chunk)
    if isinstance(results, Iterator):
        count = 0
        for arch, metrics in zip(chunk, results, strict=False):
            now = time.perf_counter()
            yield arch, metrics, now - start
            start, count = time.perf_counter(), count + 1
        if count != len(chunk):
            raise StoreError(f"measurement function gave {count} results for {len(chunk)} archs")
        return
    results = list(results)
    if len(results) != len(chunk):
        raise StoreError(f"measurement function gave {len(results)} results for {len(chunk)} archs")
    seconds = (time.perf_counter() - start) / max(len(chunk), 1)
    for arch, metrics in zip(chunk, results, strict=False):
        yield arch, metrics, seconds
