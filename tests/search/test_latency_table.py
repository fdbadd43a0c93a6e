"""Latency lookup tables: sums of parts, save/reload, store keys, offset, validation, configs."""

from __future__ import annotations

import threading
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
from search.store import Store, Waiting
from search.store.leases import HOST
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


class Persisted:
    """Records, per thread, the table keys each run measured and stored (wraps `_persist`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.keys: dict[str, list[str]] = {}
        persist = LatencyTableCost._persist

        def record(cost: LatencyTableCost, added, context) -> None:
            self.keys.setdefault(threading.current_thread().name, []).extend(added)
            persist(cost, added, context)

        monkeypatch.setattr(LatencyTableCost, "_persist", record)


def _in_thread(name: str, fn, out: dict) -> threading.Thread:
    def run() -> None:
        try:
            out[name] = fn()
        except BaseException as err:  # noqa: BLE001 - re-raised by the test
            out[name] = err

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


def test_concurrent_builds_on_one_store_time_each_part_once(
    net: MobileNetV3Supernet, tmp_path: Path, monkeypatch
) -> None:
    """Two runs build the same table on one store at once: the second waits for the first's
    parts (and offset) instead of timing them again, and both use the same figures."""
    timer, persisted = FakeTimer(monkeypatch), Persisted(monkeypatch)
    db = tmp_path / "store.sqlite"
    first_timing, second_waits = threading.Event(), threading.Event()
    fake = timer.__call__

    def slow_first(meter, chains, passes=1, seed=0, advance=None):
        first_timing.set()  # the first run holds its claims now
        assert second_waits.wait(30), "the second run never waited"
        return fake(meter, chains, passes, seed, advance)

    monkeypatch.setattr(latency_table, "time_chains", slow_first)
    wait = Waiting.wait

    def noted_wait(self: Waiting, held) -> None:
        second_waits.set()
        wait(self, held)

    monkeypatch.setattr(Waiting, "wait", noted_wait)
    out: dict = {}
    costs = [lut(pool=20), lut(pool=20)]
    a = _in_thread("first", lambda: costs[0].bind(net, store=Store(db)).build(), out)
    assert first_timing.wait(30)
    b = _in_thread("second", lambda: costs[1].bind(net, store=Store(db)).build(), out)
    a.join(60)
    b.join(60)
    assert out["first"] == out["second"] > 0  # entries each run's table gained
    assert list(persisted.keys) == ["first"] and len(timer.sessions) == 1  # measured by one
    assert (costs[0].measured, costs[0].reused) == (out["first"], 0)
    assert (costs[1].measured, costs[1].reused) == (0, out["first"])
    assert costs[1].table.entries == costs[0].table.entries  # offset included
    assert costs[0].offset_key() in costs[1].table
    stored = Store(db).rows(net.space.name, "", costs[0].settings())
    assert {r["arch_id"]: r["metrics"]["latency_ms"] for r in stored} == costs[0].table.entries


def test_overlapping_builds_split_the_parts_between_them(tmp_path: Path, monkeypatch) -> None:
    """Runs whose pools overlap each time what no other run is timing, then reuse the rest:
    no part is measured and stored by both."""
    FakeTimer(monkeypatch)
    persisted = Persisted(monkeypatch)
    db = tmp_path / "store.sqlite"
    nets = []
    for _ in range(2):  # one supernet per thread: exporting subnets sets the active one
        torch.manual_seed(0)
        nets.append(MobileNetV3Supernet(**TINY).eval())
    costs = [lut(pool=30, seed=0, offset=False), lut(pool=30, seed=1, offset=False)]
    out: dict = {}
    threads = [
        _in_thread(f"run{i}", lambda i=i: costs[i].bind(nets[i], store=Store(db)).build(), out)
        for i in range(2)
    ]
    for thread in threads:
        thread.join(60)
    assert not any(isinstance(v, BaseException) for v in out.values()), out
    first, second = (set(persisted.keys.get(f"run{i}", [])) for i in range(2))
    assert not first & second  # nothing timed and stored twice
    everything = set(costs[0].table.entries) | set(costs[1].table.entries)
    assert costs[0].measured + costs[1].measured == len(everything)
    shared = set(costs[0].table.entries) & set(costs[1].table.entries)
    assert shared and all(costs[0].table.entries[k] == costs[1].table.entries[k] for k in shared)
    for cost, n in zip(costs, nets, strict=True):  # every pool arch is covered
        rng = np.random.default_rng(cost.seed)
        pool = [n.space.sample(rng) for _ in range(cost.pool)]
        assert all(not cost.table.missing(cost.keys(a)) for a in pool)


def test_claims_of_an_ended_run_are_taken_over_at_once(
    net: MobileNetV3Supernet, tmp_path: Path, monkeypatch, caplog
) -> None:
    timer = FakeTimer(monkeypatch)
    db = tmp_path / "store.sqlite"
    cost = lut(offset=False).bind(net, store=Store(db))
    arch = net.space.smallest()
    ended = Store(db)
    ended.leases.owner = f"{HOST}:{2**22 + 7}:deadbeef"  # no such process on this host
    ended.claim(net.space.name, "", cost.settings(), cost.keys(arch))
    ended.leases.stop()
    with caplog.at_level("WARNING", logger="search.store.leases"):
        got = cost(arch)  # would wait for the lease (180 s) if the ended run's claims were kept
    assert "its process has ended" in caplog.text
    assert len(timer.sessions) == 1 and got["cpu_time_ms"] > 0
    assert Store(db).claim(net.space.name, "", cost.settings(), cost.keys(arch)).mine == []


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
