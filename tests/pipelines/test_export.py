"""What a user deploys is what was measured: each exported best subnet, loaded from its files
and re-validated with the project's evaluator, gives the stored accuracy exactly, and its ONNX
graph gives the same logits through onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import yaml

from search.evaluation import build_evaluator, evaluator_for
from supernet.checkpoint import load_supernet
from supernet.space import Arch
from tests.pipelines.conftest import compose_in

FAST = ("evaluation.max_val_batches=2", "wandb.enabled=false")


@pytest.mark.slow
def test_exported_best_subnets_equal_their_measurements(tiny_ckpt: Path, tmp_path: Path) -> None:
    from search.pipeline import run

    out = tmp_path / "search"
    cfg = compose_in(
        "search", out, "supernet=mobilenetv3_tiny", f"ckpt_path={tiny_ckpt}", "strategy=random",
        "hardware=flops", "budget=4", "relative_constraints.macs=0.6",
        f"store_path={tmp_path / 'store.sqlite'}", *FAST,
    )
    result = run(cfg)
    supernet, record = load_supernet(tiny_ckpt)
    evaluator_cls = evaluator_for(record)
    options = evaluator_cls.options(cfg.evaluation, record)
    evaluator = build_evaluator(evaluator_cls, supernet, record["data_config"], options)
    checked = 0
    for name, row in result.best.items():
        assert row is not None
        info = yaml.safe_load((out / "best" / f"best_{name}.yaml").read_text())
        assert info["arch_id"] == row.arch_id and info["files"] == [
            f"best_{name}.pt", f"best_{name}.onnx"]
        assert info["metrics"]["accuracy"] == row.metrics["accuracy"]
        arch = Arch(info["arch"])
        model = torch.load(out / "best" / f"best_{name}.pt", weights_only=False)
        again = evaluator.score_model(model, arch)
        assert again["accuracy"] == row.metrics["accuracy"], name  # exactly, on the CPU

        (images,) = evaluator.example_inputs(arch, batch_size=8)
        session = ort.InferenceSession(str(out / "best" / f"best_{name}.onnx"),
                                       providers=["CPUExecutionProvider"])
        for batch in (images[:1], images):  # the batch axis is dynamic
            expected = model(batch).detach().numpy()
            got = session.run(None, {"input0": batch.numpy()})[0]
            assert np.abs(got - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())
        checked += 1
    assert checked >= 2  # "all" and "macs"


@pytest.mark.slow
def test_an_unrecalibrated_export_would_not_match(tiny_ckpt: Path) -> None:
    """The check above has teeth: the raw supernet export computes something else than what
    was scored (its BatchNorm statistics are the supernet's, not the subnet's), so reloading
    the wrong model would change the logits the ONNX check compares. (Accuracy alone may not
    tell them apart on a briefly trained checkpoint: both can sit at chance.)"""
    supernet, record = load_supernet(tiny_ckpt)
    cls = evaluator_for(record)
    evaluator = build_evaluator(cls, supernet, record["data_config"],
                                cls.options({"max_val_batches": 2}, record))
    arch = supernet.space.smallest()
    raw = supernet.export_subnet(arch).eval()
    scored = evaluator.deployable(arch)
    (images,) = evaluator.example_inputs(arch, batch_size=8)
    with torch.no_grad():
        expected, got = scored(images), raw(images)
    assert (got - expected).abs().max() > 1e-2 * max(1.0, expected.abs().max().item())
