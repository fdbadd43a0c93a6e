"""Latency meters: how a callable is timed on a device (warm-up, repeats, trimmed mean).

A meter knows nothing of supernets; the cost models in `search.hardware.costs` build the
exported subnet and its inputs and hand the meter a closure to time.
"""

from __future__ import annotations

import gc
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from supernet.errors import NASError

log = logging.getLogger(__name__)
TIMING_REPORT_EVERY = 25  # latency timings between two progress lines

CUDA_MISSING = (
    "hardware=gpu needs a CUDA GPU, none is visible (torch.cuda.is_available() is False); "
    "use hardware=cpu or hardware=flops"
)
MODES = ("eager", "cuda_graph")
CUDA_GRAPH_NEEDS_CUDA = (
    "meter.mode=cuda_graph replays CUDA graphs and needs a CUDA GPU (meter.device=cuda, as in "
    "hardware=gpu); {why}; use meter.mode=eager"
)


class HardwareError(NASError):
    """A cost model that cannot run on this machine (no CUDA, unknown device...)."""


def _device(device: str) -> str:
    name = str(device).lower()
    if name == "gpu":
        return "cuda"
    if name == "cpu" or name == "cuda" or name.startswith("cuda:"):
        return name
    raise HardwareError(f"unknown device {device!r}; use cpu or cuda (hardware=cpu or gpu)")


def check_available(device: str) -> None:
    """Fail fast, with one clear message, when `device` is not usable here."""
    if _device(device).startswith("cuda") and not torch.cuda.is_available():
        raise HardwareError(CUDA_MISSING)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass(frozen=True)
class Latency:
    """A trimmed-mean latency in milliseconds and the samples it came from."""

    mean_ms: float
    std_ms: float
    median_ms: float
    samples_ms: tuple[float, ...]
    metric: str = "latency_ms"  # cpu_time_ms when the process clock measured CPU time

    def as_metrics(self) -> dict[str, float]:
        return {self.metric: self.mean_ms, self.metric.replace("_ms", "_std_ms"): self.std_ms}


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "process": time.process_time}
# what each clock measures: elapsed time is latency; the process clock is CPU time, not latency
CLOCK_METRICS = {"wall": "latency_ms", "process": "cpu_time_ms"}


class LatencyMeter:
    """Times a callable: warm-up runs, then `repeats` timed runs, trimmed mean and std.

    Args:
        device: `cpu` or `cuda` (`gpu` is accepted for `cuda`).
        batch_size: inputs per timed run (used by the workload that builds the inputs).
        warmup: untimed runs first (allocator, caches, cuDNN autotuning).
        repeats: timed runs.
        trim: fraction dropped at each end of the sorted times (HAT drops 10 %).
        threads: `torch.set_num_threads` during the measurement (restored afterwards);
            recorded with every measurement because it changes latency several-fold.
        clock: `wall` (elapsed time: latency, `latency_ms`) or `process` (this process's CPU
            time, `cpu_time_ms`: one CPU thread only; on a machine shared with other jobs it
            does not count the time the process waits for a core, so it is far less noisy than
            the wall clock, but it is not latency and is never reported as such).
        mode: `eager` (run the callable: on a GPU this includes the Python and kernel-launch
            time of every op, which at batch 1 is most of it) or `cuda_graph` (capture the
            callable once as a CUDA graph and time its replays: the network on the device).
    """

    def __init__(
        self,
        device: str = "cpu",
        batch_size: int = 1,
        warmup: int = 10,
        repeats: int = 50,
        trim: float = 0.1,
        threads: int = 1,
        clock: str = "wall",
        mode: str = "eager",
    ) -> None:
        self.device = _device(device)
        self.batch_size, self.warmup, self.repeats = int(batch_size), int(warmup), int(repeats)
        self.trim, self.threads = float(trim), int(threads)
        if clock == "process" and (self.cuda or self.threads != 1):
            raise HardwareError(
                "clock=process times CPU work of one thread: use it with device=cpu and "
                f"threads=1 (got device={self.device}, threads={self.threads}), else clock=wall"
            )
        self.clock = clock
        self.timer = CLOCKS[clock]
        if mode not in MODES:
            raise HardwareError(f"meter.mode is one of {list(MODES)}; got {mode!r}")
        if mode == "cuda_graph" and not self.cuda:
            why = (
                f"meter.device={self.device}"
                if torch.cuda.is_available()
                else "none is visible (torch.cuda.is_available() is False)"
            )
            raise HardwareError(CUDA_GRAPH_NEEDS_CUDA.format(why=why))
        self.mode = mode

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def metric(self) -> str:
        """`latency_ms` (wall clock) or `cpu_time_ms` (process clock): what this meter gives."""
        return CLOCK_METRICS[self.clock]

    def check_available(self) -> None:
        check_available(self.device)

    def settings(self, mode: str | None = None) -> dict[str, Any]:
        """How latency is measured: part of every stored latency's key.

        `mode` overrides the meter's for a workload that cannot be captured as a CUDA graph
        (it is timed eagerly, and its key says so)."""
        self.check_available()
        mode = self.mode if mode is None else mode
        name = torch.cuda.get_device_name(torch.device(self.device)) if self.cuda else _cpu_name()
        return {
            "metric": "latency" if self.clock == "wall" else "cpu_time",
            "hardware": "cuda" if self.cuda else "cpu",
            "device_name": name,
            "batch_size": self.batch_size,
            "warmup": self.warmup,
            "repeats": self.repeats,
            "trim": self.trim,
            "threads": self.threads,
            "torch": torch.__version__.split("+")[0],
            # the default wall clock and eager mode are left out so earlier stored figures keep
            # their key: a key without a mode was timed eagerly
            **({} if self.clock == "wall" else {"clock": self.clock}),
            **({} if mode == "eager" else {"mode": mode}),
        }

    def measure(self, run: Callable[[], Any], capturable: bool = True) -> Latency:
        """Time `run()`; the caller sets eval mode / inference mode and builds the inputs.

        In `cuda_graph` mode `run` is captured once and its replays are timed, unless the
        caller says it cannot be captured (`capturable=False`: timed eagerly)."""
        self.check_available()
        sync = torch.cuda.synchronize if self.cuda else (lambda: None)
        previous_threads = torch.get_num_threads()
        gc_was_enabled = gc.isenabled()
        times = np.empty(self.repeats)
        try:
            torch.set_num_threads(self.threads)
            if self.mode == "cuda_graph" and capturable:
                run = cuda_graph(run)
            for _ in range(self.warmup):
                run()
            sync()
            gc.disable()
            for i in range(self.repeats):
                start = self.timer()
                run()
                sync()
                times[i] = (self.timer() - start) * 1e3
        finally:
            if gc_was_enabled:
                gc.enable()
            torch.set_num_threads(previous_threads)
        ordered = np.sort(times)
        k = int(self.trim * len(ordered))
        kept = ordered[k : len(ordered) - k] if len(ordered) > 2 * k else ordered
        return Latency(
            mean_ms=float(kept.mean()),
            std_ms=float(kept.std()),
            median_ms=float(np.median(ordered)),
            samples_ms=tuple(float(t) for t in times),
            metric=self.metric,
        )


def cuda_graph(run: Callable[[], Any], warmup: int = 3) -> Callable[[], None]:
    """`run` captured once as a CUDA graph (after `warmup` runs on a side stream, as capture
    requires); the returned function replays it. `run` must read and write the same tensors
    on every call (static inputs), with no host synchronisation inside."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(max(1, warmup)):
            run()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            run()
    except Exception as err:  # the callable synchronises, or changes shapes, or ...
        raise HardwareError(
            f"this workload cannot be captured as a CUDA graph ({type(err).__name__}: {err}); "
            "use meter.mode=eager"
        ) from err
    return graph.replay
