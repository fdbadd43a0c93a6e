"""A supernet made from the user's own model (docs/tutorials/own_supernet): trained by
train.py, searched by search.py (measured latency, exported best subnets), its exported
subnets equal to it, from a config folder of the user's own found through Hydra's searchpath."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import ROOT
from tests.pipelines.conftest import compose_in

EXAMPLE = ROOT / "docs" / "tutorials" / "own_supernet"
SEARCHPATH = f"hydra.searchpath=[file://{EXAMPLE / 'conf'}]"


@pytest.fixture
def my_cnn(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201 - the example's module
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import my_cnn

    return my_cnn


def test_exported_subnets_equal_the_supernet(my_cnn) -> None:  # noqa: ANN001
    net = my_cnn.MyCNNSupernet(num_classes=5, in_channels=1)
    x = torch.randn(2, 1, 24, 24)
    rng = np.random.default_rng(0)
    for _ in range(4):  # BatchNorm statistics that differ per channel: slicing must pick them
        net.train()(torch.randn(8, 1, 24, 24))
    net.eval()
    archs = [net.space.smallest(), net.space.largest(), *(net.space.sample(rng) for _ in range(5))]
    for arch in archs:
        net.set_active(arch)
        with torch.no_grad():
            torch.testing.assert_close(net.export_subnet(arch).eval()(x), net(x))
    assert net.active_arch == arch  # export_subnet leaves the active arch alone


@pytest.mark.slow
def test_own_supernet_trains_and_is_searched(my_cnn, tmp_path: Path) -> None:  # noqa: ANN001
    from search.pipeline import run
    from supernet.pipeline import train

    out = tmp_path / "train" / "runs" / "own"
    cfg = compose_in(
        "train", out, SEARCHPATH, "supernet=my_cnn", "data=digits", "logger=csv", "threads=1",
        "trainer.max_epochs=1", "trainer.limit_train_batches=4", "data.calib_images=64",
        "data.val_size=64", "data.test_size=64", "module.num_random_eval=1",
    )
    metrics = train(cfg)
    assert metrics["val/acc_max"] >= 0
    ckpt = out / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    search_out = tmp_path / "search" / "run"
    cfg = compose_in(
        "search", search_out, SEARCHPATH, "supernet=my_cnn", f"ckpt_path={ckpt}",
        "strategy=random", "budget=4", "hardware=cpu", "hardware.meter.repeats=5",
        "hardware.meter.warmup=1", "wandb.enabled=false", "evaluation.max_val_batches=1",
    )
    result = run(cfg)
    frame = pd.read_csv(search_out / "results.csv")
    assert len(frame) == len(result.rows) == 4
    assert (frame["latency_ms"] > 0).all() and (frame["macs"] > 0).all()
    assert frame["macs"].nunique() > 1  # MACs counted on each subnet at input_resolution
    assert list((search_out / "best").glob("best_*.pt"))


def test_costs_are_counted_at_the_input_resolution(my_cnn) -> None:  # noqa: ANN001
    """A space without a `resolution` decision is costed at the supernet's `input_resolution`;
    a supernet without one gets one message saying what to add."""
    from search.hardware import AnalyticCost, HardwareError

    arch = {"depth": 3, "w0": 1.0, "w1": 1.0, "w2": 1.0}
    macs = {r: AnalyticCost().bind(my_cnn.MyCNNSupernet(input_resolution=r))(arch)["macs"]
            for r in (24, 48)}
    assert macs[48] == pytest.approx(4 * macs[24], rel=0.05)
    net = my_cnn.MyCNNSupernet()
    del net.input_resolution
    with pytest.raises(HardwareError, match="give the supernet an `input_resolution` attribute"):
        AnalyticCost().bind(net)(arch)
