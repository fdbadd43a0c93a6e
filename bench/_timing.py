"""Interleaved timing shared by the benchmarks: alternate the contenders, compare medians.

Load on a shared machine changes over seconds; timing the contenders in turn, repeat after
repeat, lets the changes hit them alike, and medians (or the median of paired ratios) shrug
off the runs another process disturbed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def _noop() -> None:
    return None


def time_once(
    fn: Callable[[], object],
    clock: Callable[[], float] = time.perf_counter,
    sync: Callable[[], object] = _noop,
) -> float:
    """Seconds `fn()` takes by `clock`; `sync` waits for queued device work before reading."""
    sync()
    start = clock()
    fn()
    sync()
    return clock() - start


def interleaved(
    fns: dict[str, Callable[[], object]],
    repeats: int,
    clock: Callable[[], float] = time.perf_counter,
    sync: Callable[[], object] = _noop,
    warmup: int = 1,
) -> dict[str, list[float]]:
    """Times of each function over `repeats` rounds, alternating between them.

    Each round runs the functions in turn, the order reversed every other round; `warmup`
    untimed runs of each come first (allocator, caches, autotuning).
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    names = list(fns)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            times[name].append(time_once(fns[name], clock, sync))
    return times


def paired_ratio(times: dict[str, list[float]], num: str, den: str) -> float:
    """Median over rounds of `num`'s time / `den`'s time in the same round."""
    return statistics.median(a / b for a, b in zip(times[num], times[den], strict=True))
