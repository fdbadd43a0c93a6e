"""The Transformer's latency lookup table: parts keyed by what decides their time, timed inside
the real beam-search run, and a table that sums them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from search.hardware import LatencyMeter
from search.hardware import lookup_table as latency_table
from search.hardware.lookup_table import LatencyTableCost
from search.store import Store
from supernet.transformer.model import TransformerSupernet
from tests.supernet.tiny_transformer import TINY_WIDTHS


@pytest.fixture(scope="module")
def net() -> TransformerSupernet:
    torch.manual_seed(0)
    return TransformerSupernet(40, 40, **TINY_WIDTHS).eval()


def test_keys_follow_the_chain_and_name_what_decides_a_part(net: TransformerSupernet) -> None:
    arch = net.space.largest()
    keys = net.latency_keys(arch)
    chain = net.latency_chain(arch)
    assert len(keys) == len(chain) == 3 + arch["dec_layers"] + 1  # encoder, decoder, the rest
    # a decoder layer's key does not depend on its position: equal settings, equal keys
    assert keys[3] == keys[4]
    other = net.latency_keys(arch.replace(dec_l2_ffn=32))
    assert [i for i, (a, b) in enumerate(zip(keys, other, strict=True)) if a != b] == [4]
    shorter = net.latency_keys(arch.replace(dec_layers=1))
    assert len(shorter) == len(keys) - 1 and shorter[-1] != keys[-1]  # the rest changes too
    assert all("beam5" in k and "src30" in k for k in keys)


def test_the_chain_times_every_layer_inside_one_decoding_run(net: TransformerSupernet) -> None:
    arch = net.space.smallest()
    meter = LatencyMeter(warmup=1, repeats=3)
    chain = net.latency_chain(arch, device="cpu")
    steps = latency_table.time_chains(meter, [chain])[0]
    assert steps.shape == (len(chain),) and (steps > 0).all()
    out = np.zeros(len(chain))
    ticks = iter(range(10_000))
    chain.run(lambda: float(next(ticks)), lambda: None, out)  # a clock that counts readings
    # every decoder layer runs once per step (30 steps) and reads the clock twice each time
    assert out[3] == pytest.approx(30 * 1.0)


def test_a_table_sums_its_parts_and_is_reused_from_the_store(
    net: TransformerSupernet, tmp_path: Path
) -> None:
    meter = LatencyMeter(warmup=0, repeats=2)
    cost = LatencyTableCost(meter, pool=4, progress=False)
    cost.bind(net, store=Store(tmp_path / "s.sqlite"))
    rng = np.random.default_rng(0)
    arch = net.space.sample(rng)
    entries = cost.entries(arch)
    assert [k for k, _ in entries][:-1] == net.latency_keys(arch)
    assert entries[-1][0].startswith("offset(")
    assert cost(arch)["latency_ms"] == pytest.approx(sum(ms for _, ms in entries))
    again = LatencyTableCost(meter, pool=4, progress=False)
    again.bind(net, store=Store(tmp_path / "s.sqlite"))
    assert again.table is not None and cost.table is not None
    assert again.table.entries == cost.table.entries  # read back, nothing timed again
