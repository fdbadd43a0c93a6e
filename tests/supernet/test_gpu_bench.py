"""`bench/bench_gpu.py` on the CPU: the profile part finds the slice node; the allocator
setting keeps freed memory mapped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.bench_gpu import Bench, mobilenet, where_time_goes


def test_where_the_time_goes_finds_the_slice_node(
    one_thread: None, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = Bench("cpu", threads=1)
    net = mobilenet(bench)
    per_step = where_time_goes(bench, net, net.space.smallest(), steps=2)
    supernet, static = per_step["supernet"], per_step["static"]
    assert supernet["_TakeBackward"][0] > 0 and supernet["_Take"][0] > 0
    assert "_TakeBackward" not in static  # the static export slices nothing
    assert static["aten::convolution_backward"][0] > 0
    out = capsys.readouterr().out
    assert "[6] where the time goes" in out and "\ntotal " in out


_TOUCH_64_MIB = """
import resource, sys
sys.path.insert(0, sys.argv[2])
from bench._timing import keep_freed_memory
print(keep_freed_memory() if sys.argv[1] == "keep" else "malloc=default")
def touch():
    block = bytearray(b"x") * (64 << 20)  # malloc'd and written
    del block
touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    touch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_kept_memory_is_not_faulted_in_again() -> None:
    """With `keep_freed_memory` a freed 64 MiB block is reused as it is; by default glibc hands
    it back and every step faults its 16,384 pages in again."""
    root = str(Path(__file__).resolve().parents[2])
    faults = {}
    for mode in ("keep", "default"):
        out = subprocess.run(
            [sys.executable, "-c", _TOUCH_64_MIB, mode, root],
            check=True, capture_output=True, text=True,
        ).stdout.split("\n")  # fmt: skip
        if mode == "keep" and not out[0].startswith("malloc=glibc"):
            pytest.skip(f"not glibc's malloc: {out[0]}")
        faults[mode] = int(out[1])
    assert faults["keep"] < 1_000 < 10_000 < faults["default"]
