"""Cost models: latency timing and its settings, the CUDA check, analytic MACs and params."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from search.hardware import (
    CUDA_MISSING,
    AnalyticCost,
    HardwareError,
    ImageWorkload,
    LatencyMeter,
    MeasuredLatencyCost,
    count_macs,
)
from search.hardware import costs as hardware
from search.store import Store
from supernet.space import Decision, SearchSpace
from tests.conftest import CONF_DIR

SPACE = SearchSpace("tiny", [Decision("width", (4, 8)), Decision("resolution", (8, 16))])


class TinySupernet:
    """Just enough of the supernet verbs: a space and exported static subnets."""

    space = SPACE

    def __init__(self) -> None:
        self.exports = 0

    def export_subnet(self, arch) -> nn.Module:
        self.exports += 1
        w = arch["width"]
        return nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(w, 10),
        ).train()


def expected_macs(width: int, res: int) -> int:
    return res * res * width * 3 * 9 + width * 10


def test_meter_trimmed_mean_drops_outliers_and_restores_threads() -> None:
    torch.set_num_threads(1)
    seen_threads, count = [], [0]

    def run() -> None:
        seen_threads.append(torch.get_num_threads())
        count[0] += 1
        time.sleep(0.06 if count[0] == 5 else 0.001)  # one slow outlier among the timed runs

    meter = LatencyMeter(warmup=2, repeats=10, trim=0.1, threads=2)
    latency = meter.measure(run)
    assert count[0] == 12 and set(seen_threads) == {2}
    assert torch.get_num_threads() == 1
    assert len(latency.samples_ms) == 10 and max(latency.samples_ms) >= 60
    assert 0 < latency.mean_ms < 10 and latency.std_ms >= 0  # the outlier was trimmed
    assert latency.as_metrics() == {"latency_ms": latency.mean_ms, "latency_std_ms": latency.std_ms}


def test_meter_settings_record_the_protocol() -> None:
    settings = LatencyMeter(batch_size=4, warmup=3, repeats=7, trim=0.2, threads=1).settings()
    assert settings["hardware"] == "cpu" and settings["device_name"]
    assert (settings["batch_size"], settings["warmup"], settings["repeats"]) == (4, 3, 7)
    assert (settings["trim"], settings["threads"]) == (0.2, 1)


@pytest.mark.parametrize("device", ["cuda", "gpu"])
def test_gpu_without_cuda_is_a_clear_error(monkeypatch, device: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    meter = LatencyMeter(device=device)
    with pytest.raises(HardwareError) as err:
        meter.check_available()
    assert str(err.value) == CUDA_MISSING
    assert "hardware=gpu needs a CUDA GPU" in CUDA_MISSING and "hardware=cpu" in CUDA_MISSING
    with pytest.raises(HardwareError, match="needs a CUDA GPU"):
        meter.measure(lambda: None)
    with pytest.raises(HardwareError, match="needs a CUDA GPU"):
        MeasuredLatencyCost(meter).check_available()


def test_bad_meter_arguments_are_rejected() -> None:
    with pytest.raises(HardwareError, match="unknown device"):
        LatencyMeter(device="tpu")
    with pytest.raises(HardwareError, match="trim"):
        LatencyMeter(trim=0.5)
    with pytest.raises(HardwareError, match="repeats"):
        LatencyMeter(repeats=0)


def test_analytic_cost_of_a_tiny_model_counts_macs_and_params() -> None:
    supernet = TinySupernet()
    cost = AnalyticCost().bind(supernet)
    arch = SPACE.arch({"width": 8, "resolution": 16})
    got = cost(arch)
    assert got["macs"] == expected_macs(8, 16)
    assert got["params"] == (3 * 9 * 8 + 8) + (8 * 10 + 10)
    small = cost(SPACE.smallest())
    assert small["macs"] == expected_macs(4, 8) < got["macs"]
    assert AnalyticCost(objective="params").objective == "params"


def test_analytic_cost_prefers_the_supernets_own_counts() -> None:
    class Counted(TinySupernet):
        def macs(self, arch, src_len: int = 1) -> int:
            return 1000 * src_len

        def params(self, arch) -> int:
            return 7

    cost = AnalyticCost(macs_kwargs={"src_len": 3}).bind(Counted())
    assert cost(SPACE.largest()) == {"macs": 3000.0, "params": 7.0}
    with pytest.raises(HardwareError, match="not bound"):
        AnalyticCost()(SPACE.largest())


def test_count_macs_matches_the_formula() -> None:
    model = TinySupernet().export_subnet(SPACE.largest()).eval()
    run = ImageWorkload(batch_size=1)(model, SPACE.largest())
    assert count_macs(model, run) == expected_macs(8, 16)


def test_measured_latency_uses_exported_eval_subnet_and_the_store(tmp_path: Path) -> None:
    supernet, seen = TinySupernet(), []

    def workload(model: nn.Module, arch):
        x = torch.randn(2, 3, arch["resolution"], arch["resolution"])

        def run() -> None:
            seen.append((model.training, torch.is_inference_mode_enabled()))
            model(x)

        return run

    meter = LatencyMeter(warmup=1, repeats=3)
    cost = MeasuredLatencyCost(meter, workload=workload)
    cost.bind(supernet, store=Store(tmp_path / "m.db"), checkpoint="ck")
    arch = SPACE.largest()
    first = cost(arch)
    assert first["latency_ms"] > 0 and first["macs"] == expected_macs(8, 16)
    assert set(seen) == {(False, True)} and len(seen) == 4
    assert cost(arch) == first and len(seen) == 4  # the latency came from the store
    again = MeasuredLatencyCost(meter, workload=workload)
    again.bind(supernet, store=Store(tmp_path / "m.db"), checkpoint="ck")
    assert again(arch)["latency_ms"] == first["latency_ms"] and len(seen) == 4
    assert cost.objective == "latency_ms"


def test_long_runs_of_latency_timings_report_progress(monkeypatch, caplog) -> None:
    monkeypatch.setattr(hardware, "TIMING_REPORT_EVERY", 2)
    cost = MeasuredLatencyCost(LatencyMeter(warmup=0, repeats=2)).bind(TinySupernet())
    with caplog.at_level(logging.INFO, logger="search.hardware.costs"):
        for arch in (SPACE.smallest(), SPACE.largest(), SPACE.smallest()):
            cost(arch)
    reports = [r.getMessage() for r in caplog.records if "timed the latency" in r.getMessage()]
    assert len(reports) == 1 and reports[0].startswith("timed the latency of 2 subnets")
    assert cost.timed == 3 and cost.timing_seconds > 0


def test_default_workload_is_channels_last_images() -> None:
    cost = MeasuredLatencyCost(LatencyMeter(warmup=0, repeats=2)).bind(TinySupernet())
    assert isinstance(cost.workload, ImageWorkload) and cost.workload.channels_last
    assert cost(SPACE.smallest())["latency_ms"] > 0
    assert cost.settings()["workload"] == "image"


@pytest.mark.parametrize("option", ["cpu", "gpu", "flops", "params"])
def test_hardware_configs_instantiate(option: str) -> None:
    cost = instantiate(OmegaConf.load(CONF_DIR / "hardware" / f"{option}.yaml"))
    expected = {"cpu": "latency_ms", "gpu": "latency_ms", "flops": "macs", "params": "params"}
    assert cost.objective == expected[option]
    if option == "gpu" and not torch.cuda.is_available():
        with pytest.raises(HardwareError, match="needs a CUDA GPU"):
            cost.check_available()
    else:
        cost.check_available()


def test_process_clock_results_are_cpu_time_never_latency() -> None:
    """Latency is wall time: a process-clock figure is stored and shown as cpu_time_ms."""
    wall, process = LatencyMeter(repeats=2, warmup=0), LatencyMeter(repeats=2, warmup=0,
                                                                    clock="process")
    assert wall.metric == "latency_ms" and process.metric == "cpu_time_ms"
    assert set(process.measure(lambda: sum(range(1000))).as_metrics()) == {
        "cpu_time_ms", "cpu_time_std_ms"}
    assert wall.settings()["metric"] != process.settings()["metric"]  # never one store key
    cost = MeasuredLatencyCost(process)
    assert cost.objective == "cpu_time_ms"
    with pytest.raises(HardwareError, match="clock=process measures cpu_time_ms"):
        MeasuredLatencyCost(process, objective="latency_ms")
    cpu_time = instantiate(OmegaConf.load(CONF_DIR / "hardware" / "cpu_time.yaml"))
    assert cpu_time.objective == "cpu_time_ms"
    assert instantiate(OmegaConf.load(CONF_DIR / "hardware" / "cpu.yaml")).meter.clock == "wall"
