"""Latency lookup tables: sums of parts, save/reload, store keys, offset, validation, configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

import search.hardware.lookup_table as latency_table
import search.hardware.meter as hardware
from search.hardware import HardwareError, LatencyMeter
from search.hardware.lookup_table import LatencyTable, LatencyTableCost
from search.hardware.table_validation import validate_table
from search.store import Store
from supernet.mobilenetv3 import MobileNetV3Supernet
from tests.conftest import CONF_DIR

TINY = {
    "num_classes": 10,
    "in_channels": 1,
    "resolutions": (16, 20),
    "stage_channels": (8, 8, 16, 16, 24),
    "head_channels": (32, 48),
}


pytestmark = pytest.mark.usefixtures("one_thread")  # timings on one thread


@pytest.fixture(scope="module")
def net() -> MobileNetV3Supernet:
    torch.manual_seed(0)
    return MobileNetV3Supernet(**TINY).eval()


def meter(**overrides) -> LatencyMeter:
    kwargs = {"warmup": 1, "repeats": 3, "clock": "process", **overrides}
    return LatencyMeter(**kwargs)


def lut(**overrides) -> LatencyTableCost:
    kwargs = {"prebuild": False, "progress": False, "pool": 30, **overrides}
    return LatencyTableCost(kwargs.pop("meter", None) or meter(), **kwargs)


def archs(net: MobileNetV3Supernet, n: int, seed: int = 3) -> list:
    rng = np.random.default_rng(seed)
    return [net.space.sample(rng) for _ in range(n)]


class FakeTimer:
    """Replaces `time_chains`: a module 'takes' its parameter count in µs; counts sessions."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sessions: list[int] = []
        monkeypatch.setattr(latency_table, "time_chains", self)

    def __call__(self, meter, chains, passes=1, seed=0, advance=None) -> list[np.ndarray]:
        self.sessions.append(len(chains))
        return [
            np.array([sum(p.numel() for p in m.parameters()) * 1e-3 for m in c.modules])
            for c in chains
        ]


def test_latency_is_the_sum_of_entries_measured_for_real(net: MobileNetV3Supernet) -> None:
    cost = lut(offset=False).bind(net)
    arch = archs(net, 1)[0]
    got = cost(arch)
    entries = cost.entries(arch)
    assert [k for k, _ in entries] == [p.key for p in net.latency_parts(arch)]
    assert got["cpu_time_ms"] == pytest.approx(sum(ms for _, ms in entries))
    assert all(ms > 0 for _, ms in entries)
    assert got["macs"] == net.macs(arch) and got["params"] == net.params(arch)
    assert cost.objective == "cpu_time_ms"


def test_parts_are_measured_once(net: MobileNetV3Supernet, monkeypatch) -> None:
    timer = FakeTimer(monkeypatch)
    cost = lut(offset=False).bind(net)
    arch = net.space.largest()
    first = cost(arch)
    assert len(timer.sessions) == 1 and len(cost.table) == len(set(cost.keys(arch)))
    assert cost(arch) == first and len(timer.sessions) == 1
    same_parts = arch.replace(s1_b3_kernel=arch["s1_b2_kernel"], s1_b3_expand=arch["s1_b2_expand"])
    cost(net.space.arch(same_parts))  # blocks 2..4 of a unit share one key
    assert len(timer.sessions) == 1
    cost(net.space.smallest())
    assert len(timer.sessions) == 2


def test_build_covers_the_pool_in_one_session(net: MobileNetV3Supernet, monkeypatch) -> None:
    timer = FakeTimer(monkeypatch)
    cost = lut(pool=40, offset=False).bind(net)
    assert cost.build() > 0 and len(timer.sessions) == 1
    rng = np.random.default_rng(0)  # the pool's own seed: every pool arch is covered
    pool = [net.space.sample(rng) for _ in range(40)]
    assert all(not cost.table.missing(cost.keys(a)) for a in pool)
    assert len(cost.plan()) < 40 // 2  # a covering set, not the whole pool
    assert cost.build() == 0 and len(timer.sessions) == 1
    prebuilt = lut(pool=40, offset=False, prebuild=True).bind(net)
    assert prebuilt.table.entries == cost.table.entries


def test_offset_is_whole_network_minus_its_parts(net: MobileNetV3Supernet, monkeypatch) -> None:
    timer = FakeTimer(monkeypatch)  # whole network = sum of its parts exactly: zero offset
    cost = lut().bind(net)
    arch = archs(net, 1)[0]
    got = cost(arch)
    key = cost.offset_key()
    assert key is not None and [k for k, _ in cost.entries(arch)][-1] == key
    assert got["cpu_time_ms"] == pytest.approx(sum(ms for _, ms in cost.entries(arch)))
    assert cost.table.entries[key] == pytest.approx(0.0, abs=1e-9)
    assert timer.sessions == [latency_table.CALIBRATION_CHAINS * 2]  # chains + whole networks
    cost.table.entries[key] = 0.5  # the offset enters every network's sum
    assert cost(arch)["cpu_time_ms"] == pytest.approx(got["cpu_time_ms"] + 0.5)
    assert lut(offset=False).bind(net).offset_key() is None
    other = MobileNetV3Supernet(**{**TINY, "head_channels": (32, 56)})
    assert lut().bind(other).offset_key() != cost.offset_key()


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_saved_table_reloads_the_same_figures(
    net: MobileNetV3Supernet, tmp_path: Path, monkeypatch, suffix: str
) -> None:
    path = tmp_path / f"lut{suffix}"
    sample = archs(net, 3)
    cost = lut(path=str(path), offset=False).bind(net)
    before = [cost(a) for a in sample]
    assert path.exists() and len(LatencyTable.load(path)) == len(cost.table)
    timer = FakeTimer(monkeypatch)  # nothing may be measured again
    again = lut(path=str(path), offset=False).bind(net)
    assert [again(a) for a in sample] == before and timer.sessions == []
    with pytest.raises(HardwareError, match="other settings"):
        lut(path=str(path), offset=False, meter=meter(repeats=4)).bind(net)


def test_bad_table_file_is_a_clear_error(net: MobileNetV3Supernet, tmp_path: Path) -> None:
    bad = tmp_path / "lut.yaml"
    bad.write_text("format: 99\n")
    with pytest.raises(HardwareError, match="cannot read the latency table"):
        lut(path=str(bad)).bind(net)


def test_store_table_is_reused_only_with_the_same_settings(
    net: MobileNetV3Supernet, tmp_path: Path, monkeypatch
) -> None:
    timer = FakeTimer(monkeypatch)
    db = tmp_path / "store.sqlite"
    arch = archs(net, 1)[0]
    first = lut(offset=False).bind(net, store=Store(db), checkpoint="ck1")(arch)
    assert len(timer.sessions) == 1
    # another process, another checkpoint: latency does not depend on the weights
    again = lut(offset=False).bind(net, store=Store(db), checkpoint="ck2")
    assert again(arch) == first and len(timer.sessions) == 1
    lut(offset=False, meter=meter(repeats=4)).bind(net, store=Store(db))(arch)
    assert len(timer.sessions) == 2  # other repeats: another table
    monkeypatch.setattr(hardware, "_cpu_name", lambda: "Another CPU")
    elsewhere = lut(offset=False).bind(net, store=Store(db))
    assert len(elsewhere.table) == 0
    elsewhere(arch)
    assert len(timer.sessions) == 3  # another device: measured again
    bound = Store(tmp_path / "bound.sqlite", checkpoint="ck1")  # a run's own store works too
    assert lut(offset=False).bind(net, store=bound, checkpoint="ck1")(arch) == first


def test_supernet_without_parts_is_a_clear_error() -> None:
    class Whole:
        space = None

        def export_subnet(self, arch) -> nn.Module:
            return nn.Identity()

    with pytest.raises(HardwareError, match="latency_parts"):
        lut().bind(Whole())


def test_validation_of_an_exact_table(net: MobileNetV3Supernet, monkeypatch) -> None:
    FakeTimer(monkeypatch)
    cost = lut(pool=10).bind(net)
    result = validate_table(cost, n=6, seed=5, progress=False)
    assert len(result.measured_ms) == 6 and result.median_ape == pytest.approx(0.0, abs=1e-9)
    assert result.spearman == pytest.approx(1.0)
    summary = result.summary()
    assert summary["n"] == 6 and summary["offset_ms"] == pytest.approx(0.0, abs=1e-9)
    assert result.conditions["threads"] == 1 and "load_avg_before" in result.conditions
    assert result.conditions["chains_measured_with_validation"] > 0


def test_validation_detects_a_wrong_table(net: MobileNetV3Supernet, monkeypatch) -> None:
    FakeTimer(monkeypatch)
    cost = lut(pool=10, offset=False).bind(net)
    sample = archs(net, 5)
    cost.measure(cost.plan(sample))
    for key in cost.table.entries:
        cost.table.entries[key] *= 1.5
    result = validate_table(cost, archs=sample, progress=False)
    assert result.median_ape == pytest.approx(50.0)


def test_meter_clock_option() -> None:
    assert LatencyMeter(clock="process").settings()["clock"] == "process"
    assert "clock" not in LatencyMeter().settings()  # wall clock: the historical key
    with pytest.raises(HardwareError, match="threads=1"):
        LatencyMeter(clock="process", threads=2)
    with pytest.raises(HardwareError, match="clock is one of"):
        LatencyMeter(clock="sundial")


def test_real_chains_time_every_part(net: MobileNetV3Supernet) -> None:
    cost = lut(offset=False).bind(net)
    parts = net.latency_parts(net.space.smallest())
    chain = cost._chain([p.build() for p in parts], parts[0].input_shape)
    steps = latency_table.time_chains(cost.meter, [chain, chain], passes=2)
    assert [s.shape for s in steps] == [(len(parts),)] * 2
    assert all((s > 0).all() for s in steps)


@pytest.mark.parametrize("option", ["cpu_lut", "gpu_lut"])
def test_lut_configs_instantiate(option: str) -> None:
    cost = instantiate(OmegaConf.load(CONF_DIR / "hardware" / f"{option}.yaml"))
    assert isinstance(cost, LatencyTableCost) and cost.objective == "latency_ms"
    if option == "gpu_lut" and not torch.cuda.is_available():
        with pytest.raises(HardwareError, match="needs a CUDA GPU"):
            cost.check_available()
    else:
        cost.check_available()
