"""`bench/bench_gpu.py`'s profile part on the CPU: it runs and finds the slice node."""

from __future__ import annotations

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
