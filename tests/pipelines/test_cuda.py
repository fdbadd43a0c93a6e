"""On a CUDA GPU: one epoch with `trainer=gpu`, a search with `hardware=gpu` and `gpu_lut`, and
the exported subnet on the GPU computing what the supernet computes. Skipped without a GPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.pipelines.conftest import TINY_TRAIN, compose_in

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
FAST = ("evaluation.max_val_batches=1", "data.calib_images=128", "wandb.enabled=false")


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    """One epoch of the tiny supernet with trainer=gpu (bf16, channels-last, GPU augmentation)."""
    from supernet.pipeline import train

    root = tmp_path_factory.mktemp("logs")
    out = root / "train" / "runs" / "gpu"
    cfg = compose_in("train", out, *TINY_TRAIN, "trainer=gpu", "trainer.max_epochs=1")
    return out, train(cfg)


def test_one_epoch_trains_on_the_gpu(gpu_run: tuple[Path, dict[str, float]]) -> None:
    out, metrics = gpu_run
    assert (out / "checkpoints" / "last.ckpt").exists()
    assert np.isfinite(metrics["train/loss_epoch"]) and 0 <= metrics["val/acc_max"] <= 100


@pytest.mark.parametrize("hardware", ["gpu", "gpu_lut"])
def test_search_times_subnets_on_the_gpu(
    gpu_run: tuple[Path, dict[str, float]], tmp_path: Path, hardware: str
) -> None:
    from search.pipeline import run

    ckpt = gpu_run[0] / "checkpoints" / "last.ckpt"
    out = tmp_path / "search"
    extra = ("hardware.pool=20", "hardware.meter.repeats=10") if hardware == "gpu_lut" else ()
    cfg = compose_in(
        "search",
        out,
        "supernet=mobilenetv3_tiny",
        f"ckpt_path={ckpt}",
        "strategy=random",
        f"hardware={hardware}",
        "budget=5",
        f"store_path={tmp_path / 'store.sqlite'}",
        *FAST,
        *extra,
    )
    cfg.paths.log_dir = str(ckpt.parents[3])
    result = run(cfg)
    assert len(result.rows) == 5 and all(r.metrics["latency_ms"] > 0 for r in result.rows)
    summary = json.loads((out / "summary.json").read_text())
    assert "latency_ms: wall time" in summary["costs"] and "CUDA-graph replays" in summary["costs"]


def test_exported_subnet_on_the_gpu_equals_the_supernet(
    gpu_run: tuple[Path, dict[str, float]],
) -> None:
    from supernet.checkpoint import load_supernet

    supernet = load_supernet(gpu_run[0] / "checkpoints" / "last.ckpt")[0]
    net = supernet.cuda().eval().to(memory_format=torch.channels_last)
    rng = np.random.default_rng(0)
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # the same fp32 arithmetic on both sides
    try:
        for arch in [net.space.largest(), net.space.smallest(), net.space.sample(rng)]:
            net.set_active(arch)
            r = arch["resolution"]
            x = torch.randn(4, 1, r, r, device="cuda").contiguous(memory_format=torch.channels_last)
            sub = net.export_subnet(arch).eval()
            with torch.no_grad():
                torch.testing.assert_close(sub(x), net(x), rtol=1e-4, atol=1e-5)
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
