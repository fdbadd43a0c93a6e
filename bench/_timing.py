"""Interleaved timing shared by the benchmarks: alternate the contenders, compare medians.

Load on a shared machine changes over seconds; timing the contenders in turn, repeat after
repeat, lets the changes hit them alike, and medians (or the median of paired ratios) shrug
off the runs another process disturbed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import statistics
import time
from collections.abc import Callable

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


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


def keep_freed_memory(limit: int = 1 << 30) -> str:
    """Make glibc's malloc keep freed memory mapped, as PyTorch's CUDA caching allocator does.

    By default glibc hands large freed blocks back to the kernel and maps them again on the
    next allocation, so a CPU step of a few milliseconds can spend most of its time in page
    faults (measured: the largest MobileNetV3 subnet at batch 1, 155 ms per step of which
    100 ms in the kernel, 68,000 faults; 48 ms and none with this). How many faults a step
    takes depends on what the process allocated before, not on the network, so it moves
    ratios between contenders at random. Blocks up to `limit` bytes then come from the heap,
    which is never trimmed. Returns how the allocator was left, for the benchmark's header.
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return "malloc=default (not glibc)"
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    if mallopt(_M_MMAP_THRESHOLD, limit) == 1 and mallopt(_M_TRIM_THRESHOLD, limit) == 1:
        return f"malloc=glibc, freed blocks up to {limit >> 20} MiB kept mapped"
    return "malloc=default (glibc refused the thresholds)"
