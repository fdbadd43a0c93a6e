"""`hardware=onnxruntime`: latency of each exported subnet as a deployed ONNX graph on this CPU.

PyTorch's eager latency includes Python and dispatcher time per op, which a deployment does not
pay. This cost model exports the static subnet to ONNX (`supernet.export.to_onnx`, the batch
fixed to the meter's), opens it in an ONNX Runtime session on the CPU execution provider with
all graph optimisations (constant folding, Conv+BN+activation fusion), its thread count fixed
to `meter.threads` (one inference thread per step: `inter_op_num_threads=1`; with more than one
intra-op thread, the extra threads are pinned to distinct cores), and times `session.run`
with the meter. A translation subnet is timed as it translates: its encoder and decoder-step
graphs (`supernet.transformer.onnx_decoding`) under the beam search of the device kits' runner
(numpy), on the supernet's latency workload. The store key records the mode, the provider and
the onnxruntime version.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from search.hardware.costs import (
    AnalyticCost,
    ImageWorkload,
    MeasuredLatencyCost,
    describe_timing,
    input_resolution,
)
from search.hardware.device_runner import Translator
from search.hardware.kit import translation_spec
from search.hardware.meter import HardwareError, LatencyMeter
from search.store import Store
from supernet.export import ONNX_OPSET, to_onnx
from supernet.space import Arch
from supernet.transformer.latency import TranslationWorkload
from supernet.transformer.onnx_decoding import export_decoding

PROVIDER = "CPUExecutionProvider"
MISSING = "hardware=onnxruntime needs onnx and onnxruntime: pip install onnx onnxruntime"


def _ort() -> Any:
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxruntime
    except ImportError:
        raise HardwareError(MISSING) from None
    return onnxruntime


def session_options(threads: int) -> Any:
    """ONNX Runtime session options: `threads` intra-op threads, sequential execution, all
    graph optimisations, the extra threads pinned to distinct allowed cores."""
    ort = _ort()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if threads > 1 and len(cores) >= threads:  # the calling thread is the first; pin the rest
        pinned = ";".join(str(c + 1) for c in cores[1:threads])  # 1-based logical processors
        options.add_session_config_entry("session.intra_op_thread_affinities", pinned)
    return options


class OnnxRuntimeCost(MeasuredLatencyCost):
    """Latency of the exported subnet run by ONNX Runtime on the CPU, plus MACs and params.

    Args:
        meter: how to time (`device` must be `cpu`; `threads` becomes the session's).
        opset: ONNX opset of the exported graphs.
        workload: what is timed (default: the supernet's `latency_workload`, a Transformer's
            beam search, else `ImageWorkload(meter.batch_size)`, NCHW).
        objective: the cost objective (default: what the meter measures).
        analytic: the MACs/params part (default `AnalyticCost()`).
    """

    def __init__(
        self,
        meter: LatencyMeter,
        opset: int = ONNX_OPSET,
        workload: ImageWorkload | TranslationWorkload | None = None,
        objective: str | None = None,
        analytic: AnalyticCost | None = None,
    ) -> None:
        if meter.cuda or meter.mode != "eager":
            raise HardwareError(
                "hardware=onnxruntime times ONNX Runtime's CPU execution provider: keep "
                f"meter.device=cpu and meter.mode=eager (got device={meter.device}, "
                f"mode={meter.mode})"
            )
        super().__init__(meter, workload, objective, analytic)
        self.opset = int(opset)

    def check_available(self) -> None:
        _ort()
        super().check_available()

    def bind(
        self, supernet: Any, store: Store | None = None, checkpoint: str = ""
    ) -> OnnxRuntimeCost:
        if self.workload is None:
            if callable(getattr(supernet, "latency_workload", None)):
                self.workload = supernet.latency_workload(self.meter.batch_size)
            else:
                self.workload = ImageWorkload(
                self.meter.batch_size, input_resolution(supernet), channels_last=False
            )
        super().bind(supernet, store, checkpoint)
        return self

    def mode(self) -> str:
        return "onnxruntime"

    def settings(self) -> dict[str, Any]:
        ort = _ort()
        settings = super().settings()
        settings.update(
            mode="onnxruntime", provider=PROVIDER, onnxruntime=ort.__version__, opset=self.opset
        )
        return settings

    def describe(self) -> str:
        if isinstance(self.workload, TranslationWorkload):
            w = self.workload
            what = (
                f"beam search (beam {w.beam_size}, {w.tgt_len} steps, {w.src_len}-token "
                f"source) over the exported subnet's encoder and decoder-step ONNX graphs "
                f"({PROVIDER})"
            )
        else:
            what = f"session.run of the exported subnet's ONNX graph ({PROVIDER})"
        return describe_timing(self.meter, "onnxruntime", what)

    def session(self, arch: Arch, folder: str | Path) -> tuple[Any, dict[str, Any]]:
        """An ONNX Runtime session of `arch`'s exported subnet and the input it is timed on."""
        ort = _ort()
        supernet = self._require_bound()
        assert isinstance(self.workload, ImageWorkload)
        model = supernet.export_subnet(arch).eval().cpu()
        x = self.workload.inputs(model, arch)
        path = to_onnx(model, (x,), Path(folder) / "subnet.onnx", self.opset, dynamic_batch=False)
        options = session_options(self.meter.threads)
        session = ort.InferenceSession(str(path), options, providers=[PROVIDER])
        return session, {"input0": x.numpy()}

    def translator(self, arch: Arch, folder: str | Path) -> Translator:
        """`arch`'s beam search over its encoder and decoder-step graphs in ONNX Runtime."""
        ort = _ort()
        workload = self.workload
        assert isinstance(workload, TranslationWorkload)
        model = self._require_bound().export_subnet(arch).eval().cpu()
        graphs = export_decoding(model, Path(folder) / "subnet", workload.batch_size,
                                 workload.src_len, workload.beam_size, self.opset)  # fmt: skip
        options = session_options(self.meter.threads)
        encoder, decoder = (ort.InferenceSession(str(g), options, providers=[PROVIDER])
                            for g in graphs)  # fmt: skip
        return Translator(encoder, decoder, translation_spec(model, workload))

    def measure(self, arch: Arch) -> dict[str, float]:
        """Export `arch`, open it in ONNX Runtime and time it now (no store)."""
        with tempfile.TemporaryDirectory(prefix="nas_onnx_") as folder:
            if isinstance(self.workload, TranslationWorkload):
                run: Any = self.translator(arch, folder)
            else:
                session, feed = self.session(arch, folder)
                run = lambda: session.run(None, feed)  # noqa: E731
            with torch.inference_mode():
                latency = self.meter.measure(run, capturable=False)
        return latency.as_metrics()
