"""Latency modes: eager, CUDA-graph replays, ONNX Runtime; each in its own store key, each
described for the report; one clear message for a mode this machine cannot run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from search.hardware import (
    CUDA_MISSING,
    HardwareError,
    LatencyMeter,
    MeasuredLatencyCost,
    OnnxRuntimeCost,
    onnx_runtime,
)
from search.hardware.meter import cuda_graph
from search.store import Store, settings_key
from supernet.mobilenetv3 import MobileNetV3Supernet
from supernet.transformer.model import TransformerSupernet
from tests.conftest import CONF_DIR
from tests.supernet.test_mobilenetv3 import TINY
from tests.supernet.tiny_transformer import TINY_WIDTHS


def tiny_transformer() -> TransformerSupernet:
    torch.manual_seed(0)
    return TransformerSupernet(20, 20, **TINY_WIDTHS, share_all_embeddings=True)


@pytest.fixture
def net() -> MobileNetV3Supernet:
    torch.manual_seed(0)
    return MobileNetV3Supernet(**TINY).eval()


def quick(**kw) -> LatencyMeter:
    return LatencyMeter(warmup=1, repeats=3, **kw)


def test_unknown_mode_and_cuda_graph_without_cuda_are_clear_errors(monkeypatch) -> None:
    with pytest.raises(HardwareError, match=r"meter.mode is one of \['eager', 'cuda_graph'\]"):
        LatencyMeter(mode="graph")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(HardwareError) as err:
        LatencyMeter(device="cpu", mode="cuda_graph")
    message = str(err.value)
    assert "meter.mode=cuda_graph" in message and "none is visible" in message
    assert "use meter.mode=eager" in message and "\n" not in message
    meter = LatencyMeter(device="cuda", mode="cuda_graph")  # hardware=gpu: the GPU message
    with pytest.raises(HardwareError, match="hardware=gpu needs a CUDA GPU") as err:
        meter.check_available()
    assert str(err.value) == CUDA_MISSING


def test_mode_is_in_the_key_only_when_not_eager() -> None:
    """Eager keys stay as they were (stored figures keep their key); other modes are recorded."""
    eager = LatencyMeter().settings()
    assert "mode" not in eager
    assert LatencyMeter().settings(mode="onnxruntime")["mode"] == "onnxruntime"


def test_onnxruntime_cost_times_the_exported_graph(net: MobileNetV3Supernet, tmp_path) -> None:
    arch = net.space.smallest()
    ort = OnnxRuntimeCost(quick()).bind(net)
    settings = ort.settings()
    assert settings["mode"] == "onnxruntime" and settings["provider"] == "CPUExecutionProvider"
    assert settings["onnxruntime"] and settings["opset"] == 17 and settings["threads"] == 1
    eager_settings = MeasuredLatencyCost(quick()).bind(net).settings()
    assert settings_key(settings) != settings_key(eager_settings)
    cost = ort(arch)
    assert cost["latency_ms"] > 0 and cost["macs"] == net.macs(arch)
    # the session computes what the exported subnet computes
    session, feed = ort.session(arch, tmp_path)
    expected = net.export_subnet(arch).eval()(torch.from_numpy(feed["input0"]))
    got = torch.from_numpy(session.run(None, feed)[0])
    torch.testing.assert_close(got, expected.detach(), rtol=1e-4, atol=1e-4)
    assert ort.describe().startswith("latency_ms: wall time of session.run")


def test_onnxruntime_times_a_translation_as_it_translates(tmp_path) -> None:
    """A Transformer: its encoder and decoder-step graphs under the kits' beam search, which
    finds the subnet's own translation, on the supernet's latency workload."""
    from supernet.transformer.beam import beam_search

    net = tiny_transformer().eval()
    arch = net.space.smallest()
    ort = OnnxRuntimeCost(quick()).bind(net)
    assert ort.settings()["tgt_len"] == 30 and ort.settings()["beam_size"] == 5
    assert "beam search (beam 5, 30 steps, 30-token source)" in ort.describe()
    cost = ort(arch)
    assert cost["latency_ms"] > 0 and cost["macs"] == net.macs(arch)
    translate = ort.translator(arch, tmp_path)
    want = beam_search(net.export_subnet(arch).eval(), torch.from_numpy(translate.src), 5,
                       max_len_a=0.0, max_len_b=29, min_len=29)  # fmt: skip
    assert translate() == [h.tokens for h in want]


def test_onnxruntime_stores_its_own_figures(net: MobileNetV3Supernet, tmp_path) -> None:
    store = Store(tmp_path / "store.sqlite")
    arch = net.space.smallest()
    ort = OnnxRuntimeCost(quick()).bind(net, store=store, checkpoint="c")
    eager = MeasuredLatencyCost(quick()).bind(net, store=store, checkpoint="c")
    first = ort(arch)["latency_ms"]
    eager(arch)
    calls = []
    ort.measure = lambda a: calls.append(a) or {}  # type: ignore[method-assign]
    again = OnnxRuntimeCost(quick()).bind(net, store=store, checkpoint="c")
    again.measure = ort.measure  # type: ignore[method-assign]
    assert again(arch)["latency_ms"] == first and not calls  # reused, not re-timed
    store.close()


def test_onnxruntime_refuses_what_it_cannot_time(net: MobileNetV3Supernet, monkeypatch) -> None:
    with pytest.raises(HardwareError, match="meter.device=cpu and meter.mode=eager"):
        OnnxRuntimeCost(LatencyMeter(device="cuda"))

    def missing() -> None:
        raise HardwareError(onnx_runtime.MISSING)

    monkeypatch.setattr(onnx_runtime, "_ort", missing)
    with pytest.raises(HardwareError, match="pip install onnx onnxruntime"):
        OnnxRuntimeCost(quick()).check_available()


def test_session_options_pin_threads() -> None:
    options = onnx_runtime.session_options(1)
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1


def test_descriptions_say_what_is_measured(net: MobileNetV3Supernet) -> None:
    wall = MeasuredLatencyCost(quick()).bind(net).describe()
    cpu = MeasuredLatencyCost(quick(clock="process")).bind(net).describe()
    assert wall.startswith("latency_ms: wall time") and "eagerly" in wall
    assert cpu.startswith("cpu_time_ms: CPU time") and "not latency" in cpu


def test_translation_workload_is_timed_eagerly() -> None:
    """A beam search cannot be captured as a graph: its key says eager whatever the meter."""
    cost = MeasuredLatencyCost(quick())
    cost.bind(tiny_transformer())
    assert cost.mode() == "eager" and "mode" not in cost.settings()


def test_hardware_onnxruntime_config(net: MobileNetV3Supernet) -> None:
    cfg = OmegaConf.load(CONF_DIR / "hardware" / "onnxruntime.yaml")
    cfg.meter.repeats, cfg.meter.warmup = 2, 1
    cost = instantiate(cfg)
    assert isinstance(cost, OnnxRuntimeCost) and cost.objective == "latency_ms"
    cost.check_available()
    rng = np.random.default_rng(0)
    assert cost.bind(net)(net.space.sample(rng))["latency_ms"] > 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_replays_time_the_network(net: MobileNetV3Supernet) -> None:
    net = net.cuda()
    arch = net.space.sample(np.random.default_rng(0))
    graph = MeasuredLatencyCost(LatencyMeter("cuda", mode="cuda_graph", repeats=20)).bind(net)
    eager = MeasuredLatencyCost(LatencyMeter("cuda", repeats=20)).bind(net)
    assert graph.settings()["mode"] == "cuda_graph" and "mode" not in eager.settings()
    g, e = graph(arch)["latency_ms"], eager(arch)["latency_ms"]
    assert 0 < g < e  # batch 1: eager is mostly launch overhead
    x = torch.randn(2, 3, device="cuda")
    y = torch.empty_like(x)
    replay = cuda_graph(lambda: torch.mul(x, 2, out=y))
    x.fill_(3.0)
    replay()
    torch.cuda.synchronize()
    assert y.eq(6.0).all()
