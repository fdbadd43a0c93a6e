"""Cost models chosen by `hardware=`: analytic MACs/params, or latency measured on a device.

Every cost model answers `cost(arch) -> {"macs", "params"[, "latency_ms", "latency_std_ms"]}`
(`cpu_time_ms` instead of `latency_ms` when the meter uses the process clock)
and names the metric the search should use as its cost objective (`objective`), so strategies
never branch on a hardware name.

Latency is measured on the *exported* static subnet (`supernet.export_subnet(arch)`), in eval
mode under `torch.inference_mode`, with a thread count set for the measurement and restored
afterwards, and a trimmed mean over repeats (CUDA synchronised around every repeat). What is
run is a *workload*: a function `(model, arch) -> run()` that builds the inputs once and
returns the closure to time.

- Images: `ImageWorkload` times one forward pass of `batch_size` images at
  `arch["resolution"]` in channels-last layout.
- Translation (HAT's protocol): the supernet provides the workload. A supernet with a method
  `latency_workload(batch_size: int) -> Workload` is asked for it; the transformer's returns
  a closure that encodes one 30-token sentence once and runs 30 incremental decoder steps
  with beam 5. Its `settings()` dict (sentence length, beam...) becomes part of the store key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from search.hardware.meter import TIMING_REPORT_EVERY, HardwareError, LatencyMeter
from search.store import Store
from supernet.space import Arch

log = logging.getLogger(__name__)


@runtime_checkable
class Workload(Protocol):
    """Builds the inputs for `model` (the exported subnet of `arch`) and returns what to time.

    Optionally has `settings() -> dict`, which becomes part of the latency's store key, and
    `capturable = True` when its closure can be captured as a CUDA graph (static inputs, no
    host synchronisation); others are timed eagerly in `meter.mode=cuda_graph`.
    """

    def __call__(self, model: nn.Module, arch: Arch) -> Callable[[], Any]: ...


def workload_settings(workload: Workload) -> dict[str, Any]:
    """The workload's own description, or its qualified name when it has none."""
    settings = getattr(workload, "settings", None)
    if callable(settings):
        return dict(settings())
    fn = getattr(workload, "__qualname__", type(workload).__qualname__)
    return {"workload": f"{getattr(workload, '__module__', '')}.{fn}"}


def _model_device(model: nn.Module) -> torch.device:
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def input_resolution(supernet: Any) -> int | None:
    """The fixed input size of a supernet whose space has no `resolution` decision: its
    `input_resolution` attribute (None when it has none)."""
    value = getattr(supernet, "input_resolution", None)
    return None if value is None else int(value)


class ImageWorkload:
    """One forward pass of `batch_size` images at the arch's resolution (channels-last).

    Capturable as a CUDA graph: the closure always reads the same input tensor.

    Args:
        batch_size: images per pass.
        resolution: used when the arch has no `resolution` decision (a supernet's
            `input_resolution`, see `input_resolution`).
        channels: input channels; default the first convolution's `in_channels`.
        channels_last: NHWC inputs and weights (much faster for depthwise convs on CPU).
    """

    def __init__(
        self,
        batch_size: int = 1,
        resolution: int | None = None,
        channels: int | None = None,
        channels_last: bool = True,
    ) -> None:
        self.batch_size, self.resolution = int(batch_size), resolution
        self.channels, self.channels_last = channels, bool(channels_last)

    capturable = True

    def settings(self) -> dict[str, Any]:
        return {
            "workload": "image",
            "channels_last": self.channels_last,
            "resolution": self.resolution,
            "channels": self.channels,
        }

    def __call__(self, model: nn.Module, arch: Arch) -> Callable[[], Any]:
        x = self.inputs(model, arch)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        return lambda: model(x)

    def inputs(self, model: nn.Module, arch: Arch) -> torch.Tensor:
        """The batch of images `model` is timed on (NCHW, on the model's device, seed 0)."""
        resolution = arch.get("resolution", self.resolution)
        if resolution is None:
            raise HardwareError(
                "the image workload needs an input resolution: the space has no 'resolution' "
                "decision, so give the supernet an `input_resolution` attribute (the image size "
                "it runs at)"
            )
        channels = self.channels
        if channels is None:
            conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
            if conv is None:
                raise HardwareError(
                    f"the image workload cannot time a {type(model).__name__} (no Conv2d); a "
                    "supernet that is not an image model provides latency_workload(batch_size)"
                )
            channels = conv.in_channels
        generator = torch.Generator().manual_seed(0)
        size = (self.batch_size, channels, int(resolution), int(resolution))
        return torch.randn(size, generator=generator).to(_model_device(model))


def count_macs(model: nn.Module, run: Callable[[], Any]) -> int:
    """Multiply-accumulates of Conv2d and Linear layers during `run()`, by forward hooks."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += output.numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    try:
        with torch.inference_mode():
            run()
    finally:
        for h in handles:
            h.remove()
    return total


class CostModel:
    """Base of the `hardware=` options: bind to a supernet, then call with an arch.

    Attributes:
        objective: the cost metric a search should minimise or constrain with this model.
    """

    objective: str = "macs"

    def __init__(self) -> None:
        self.supernet: Any = None

    def bind(self, supernet: Any, store: Store | None = None, checkpoint: str = "") -> CostModel:
        """Attach the supernet (and a store for measured figures); returns self."""
        self.supernet = supernet
        return self

    def check_available(self) -> None:
        """Raise `HardwareError` at start-up when this model cannot run on this machine."""

    def settings(self) -> dict[str, Any]:
        return {"hardware": "analytic"}

    def describe(self) -> str:
        """What the cost figures are, in words (the search report records it)."""
        return f"{self.objective}: analytic, from the architecture alone"

    def _require_bound(self) -> Any:
        if self.supernet is None:
            raise HardwareError(f"{type(self).__name__} is not bound; call bind(supernet) first")
        return self.supernet

    def __call__(self, arch: Arch) -> dict[str, float]:
        raise NotImplementedError


class AnalyticCost(CostModel):
    """MACs and parameters from the supernet's own analytic count (free, exact, deterministic).

    Falls back to counting on the exported subnet (parameters, and Conv2d/Linear MACs by
    hooks over one image) when the supernet has no `macs`/`params` methods.

    Args:
        metrics: which of `macs`, `params` to report.
        objective: the cost objective (default: the first metric).
        macs_kwargs: extra arguments of `supernet.macs` (e.g. `src_len`, `tgt_len`).
    """

    def __init__(
        self,
        metrics: tuple[str, ...] | list[str] = ("macs", "params"),
        objective: str | None = None,
        macs_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        unknown = set(metrics) - {"macs", "params"}
        if unknown or not metrics:
            raise HardwareError(f"analytic metrics are macs and params; got {list(metrics)}")
        self.metrics = tuple(metrics)
        self.objective = objective or self.metrics[0]
        self.macs_kwargs = dict(macs_kwargs or {})

    def settings(self) -> dict[str, Any]:
        return {"hardware": "analytic", "metrics": list(self.metrics), **self.macs_kwargs}

    def __call__(self, arch: Arch) -> dict[str, float]:
        supernet = self._require_bound()
        out: dict[str, float] = {}
        subnet: nn.Module | None = None
        for metric in self.metrics:
            method = getattr(supernet, metric, None)
            if callable(method):
                kwargs = self.macs_kwargs if metric == "macs" else {}
                out[metric] = float(method(arch, **kwargs))
                continue
            if subnet is None:
                subnet = supernet.export_subnet(arch).eval()
            if metric == "params":
                out[metric] = float(sum(p.numel() for p in subnet.parameters()))
            else:
                workload = ImageWorkload(1, input_resolution(supernet), channels_last=False)
                run = workload(subnet, arch)
                out[metric] = float(count_macs(subnet, run))
        return out


def describe_timing(meter: LatencyMeter, mode: str, what: str) -> str:
    """`latency_ms: wall time of ...` or `cpu_time_ms: CPU time (not latency) of ...`."""
    settings = meter.settings(mode=mode)
    clock = "wall time" if meter.clock == "wall" else "CPU time of the timing thread (not latency)"
    how = {
        "eager": "run eagerly (Python and kernel launches included)",
        "cuda_graph": "CUDA-graph replays (the network on the device, no launch overhead)",
        "onnxruntime": "all graph optimisations",
    }.get(mode, mode)
    return (
        f"{meter.metric}: {clock} of {what}, {how}, on {settings['device_name']}, batch "
        f"{meter.batch_size}, {meter.threads} thread(s), {int(meter.trim * 100)}%-trimmed mean "
        f"of {meter.repeats} runs after {meter.warmup} warm-up runs"
    )


def timed_objective(meter: LatencyMeter, objective: str | None) -> str:
    """The objective of a timed cost model: the meter's metric, or an analytic one."""
    if objective is None or objective == meter.metric or objective in ("macs", "params"):
        return objective or meter.metric
    other = "wall" if meter.clock == "process" else "process"
    raise HardwareError(
        f"objective {objective} does not match the meter: clock={meter.clock} measures "
        f"{meter.metric} (latency is wall time; the process clock gives CPU time); set "
        f"objective: {meter.metric} or meter.clock={other}"
    )


class MeasuredLatencyCost(CostModel):
    """Measured latency of the exported subnet, plus analytic MACs and params.

    Latencies go through the store when one is bound (keyed by the meter's and workload's
    settings, device name included), so each arch is timed once per machine and protocol.

    Args:
        meter: how to time.
        workload: what to time; default the supernet's `latency_workload(batch_size)` when
            it has one, else `ImageWorkload(batch_size)`.
        objective: the cost objective (default: what the meter measures, `latency_ms` or
            `cpu_time_ms`).
        analytic: the analytic part (default `AnalyticCost()`).
    """

    def __init__(
        self,
        meter: LatencyMeter,
        workload: Workload | None = None,
        objective: str | None = None,
        analytic: AnalyticCost | None = None,
    ) -> None:
        super().__init__()
        self.meter, self.workload = meter, workload
        self.objective = timed_objective(meter, objective)
        self.analytic = analytic or AnalyticCost()
        self._latency: Callable[[Arch], Mapping[str, float]] = self.measure
        self.timed, self.timing_seconds = 0, 0.0

    def check_available(self) -> None:
        self.meter.check_available()

    def bind(
        self, supernet: Any, store: Store | None = None, checkpoint: str = ""
    ) -> MeasuredLatencyCost:
        super().bind(supernet)
        self.analytic.bind(supernet)
        if self.workload is None:
            factory = getattr(supernet, "latency_workload", None)
            batch = self.meter.batch_size
            self.workload = (
                factory(batch_size=batch)
                if factory
                else ImageWorkload(batch, input_resolution(supernet))
            )
        self._latency = self.measure
        if store is not None:
            self._latency = store.cached(
                self.measure, supernet.space.name, checkpoint, self.settings()
            )
        return self

    def mode(self) -> str:
        """How the workload is timed: the meter's mode, `eager` for one that cannot be
        captured as a CUDA graph (the Transformer's beam search)."""
        capturable = bool(getattr(self.workload, "capturable", False))
        return self.meter.mode if capturable else "eager"

    def settings(self) -> dict[str, Any]:
        workload = workload_settings(self.workload) if self.workload is not None else {}
        return {**self.meter.settings(mode=self.mode()), **workload}

    def describe(self) -> str:
        return describe_timing(self.meter, self.mode(), "the exported subnet in PyTorch")

    def measure(self, arch: Arch) -> dict[str, float]:
        """Time the exported subnet of `arch` now (no store).

        Strategies may ask for the cost of many networks they never validate (LayerNAS's
        completions, MathNAS's block table), so every `TIMING_REPORT_EVERY` timings are
        reported: costs take no validations, but measured ones take time."""
        supernet = self._require_bound()
        assert self.workload is not None
        started = time.perf_counter()
        model = supernet.export_subnet(arch).eval().to(self.meter.device)
        try:
            with torch.inference_mode():
                run = self.workload(model, arch)
                latency = self.meter.measure(run, capturable=self.mode() == "cuda_graph")
        finally:
            del model
            if self.meter.cuda:
                torch.cuda.empty_cache()
        self.timed += 1
        self.timing_seconds += time.perf_counter() - started
        if self.timed % TIMING_REPORT_EVERY == 0:
            log.info(
                "timed the latency of %d subnets so far (%.1f s each; stored, never timed "
                "twice; hardware=cpu_lut looks latency up instead)",
                self.timed,
                self.timing_seconds / self.timed,
            )
        return latency.as_metrics()

    def __call__(self, arch: Arch) -> dict[str, float]:
        return {**self.analytic(arch), **{k: float(v) for k, v in self._latency(arch).items()}}
