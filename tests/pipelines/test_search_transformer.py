"""Search end to end on a tiny trained Transformer supernet: BLEU in place of accuracy, through
the same strategies, store and report as the MobileNetV3 search."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from search.evaluation import build_evaluator, evaluator_for, load_datamodule
from search.evaluation.translation import TranslationEvaluator
from search.pipeline import resolve_objectives
from search.problem import ProblemError
from supernet.checkpoint import load_supernet
from supernet.errors import CheckpointError
from tests.conftest import CONF_DIR
from tests.pipelines.conftest import compose_in

TINY_TRANSLATION = (
    "supernet=transformer_tiny",
    "logger=csv",
    "threads=1",
    "trainer.max_epochs=1",
    "data.num_train=300",
    "data.num_valid=16",
    "data.num_test=16",
    "data.max_digits=3",
    "data.max_tokens=400",
    "module.warmup_steps=5",
)
STRATEGIES = sorted(p.stem for p in (CONF_DIR / "strategy").glob("*.yaml"))
FAST = ("evaluation.translation.max_sentences=6", "wandb.enabled=false")
BUDGETS = {"mathnas": 64}  # MathNAS measures its block table (60 validations) first
LATENCY = ("hardware=cpu", "hardware.meter.repeats=3", "hardware.meter.warmup=1")


@pytest.fixture(scope="module")
def translation_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    """A tiny Transformer supernet trained for one short epoch: its checkpoint and metrics."""
    from supernet.pipeline import train

    threads = torch.get_num_threads()
    out = tmp_path_factory.mktemp("logs") / "train" / "runs" / "tiny_transformer"
    try:
        metrics = train(compose_in("train", out, *TINY_TRANSLATION))
    finally:
        torch.set_num_threads(threads)
    return out / "checkpoints" / "last.ckpt", metrics


@pytest.fixture(scope="module")
def ckpt(translation_run: tuple[Path, dict[str, float]]) -> Path:
    return translation_run[0]


def _search(tmp_path: Path, ckpt: Path, *overrides: str, supernet: str = "transformer_tiny"):
    from search.pipeline import run

    out = tmp_path / "search" / "run"
    cfg = compose_in(
        "search", out, f"supernet={supernet}", f"ckpt_path={ckpt}",
        f"store_path={tmp_path / 'store.sqlite'}", *FAST, *overrides,
    )  # fmt: skip
    return run(cfg), out


def test_bleu_of_the_largest_subnet_is_trainings_val_bleu(translation_run) -> None:
    path, metrics = translation_run
    supernet, record = load_supernet(path)
    cls = evaluator_for(record)
    assert cls is TranslationEvaluator
    options = cls.options({"device": "cpu", "translation": {}}, record)
    evaluator = build_evaluator(cls, supernet, record["data_config"], options)
    scores = evaluator([supernet.space.largest(), supernet.space.smallest()])
    # same decoding defaults as the training module's validation: the same number
    assert scores[0]["bleu"] == pytest.approx(metrics["val/bleu_max"], abs=1e-6)
    assert scores[1]["bleu"] == pytest.approx(metrics["val/bleu_min"], abs=1e-6)
    assert scores[0]["loss"] == pytest.approx(metrics["val/loss_max"], rel=1e-5)
    assert evaluator.settings()["sentences"] == 16
    data = load_datamodule(record["data_config"], record["vocab"])
    capped = cls(supernet, data, max_sentences=5, beam_size=2, vocab=record["vocab"])
    indices = sorted(i for b in capped.validation for i in b["index"].tolist())
    assert indices == [0, 1, 2, 3, 4]  # the split's first sentences, not the shortest
    settings = capped.settings()
    assert settings["sentences"] == 5 and settings["beam_size"] == 2
    assert settings != evaluator.settings()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_searches_bleu(strategy: str, ckpt: Path, tmp_path: Path) -> None:
    budget = BUDGETS.get(strategy, 8)
    result, out = _search(
        tmp_path, ckpt, f"strategy={strategy}", "hardware=flops", f"budget={budget}",
        "relative_constraints.macs=0.8",
    )  # fmt: skip
    assert result.objectives == ("bleu", "macs")
    assert 0 < len(result.rows) <= budget
    frame = pd.read_csv(out / "results.csv")
    assert {"arch_id", "arch", "bleu", "loss", "macs", "params", "strategy"} <= set(frame.columns)
    assert "accuracy" not in frame.columns
    assert frame["bleu"].between(0, 100).all() and (frame["loss"] > 0).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["objectives"] == ["bleu", "macs"]
    assert summary["pareto"] and all("bleu" in p["metrics"] for p in summary["pareto"])
    assert len(summary["hypervolume"]) == len(result.rows)
    for png in ("pareto.png", "hypervolume.png"):
        assert (out / png).stat().st_size > 1000
    info = yaml.safe_load((out / "best" / "best_all.yaml").read_text())
    assert "bleu" in info["metrics"]
    assert info["metrics"]["macs"] <= result.constraints["macs"]
    exported = torch.load(out / "best" / "best_all.pt", weights_only=False)
    assert sum(p.numel() for p in exported.parameters()) == info["metrics"]["params"]
    assert info["files"] == [f"best_all{x}" for x in (".pt", ".onnx", ".encoder.onnx",
                                                       ".decoder.onnx")]  # fmt: skip
    _check_decoding_graphs(out / "best" / "best_all", exported)


def _check_decoding_graphs(stem: Path, model) -> None:  # noqa: ANN001 - a SubTransformer
    """The exported encoder and decoder-step graphs give the module's first-step
    log-probabilities (the kits' tests check whole beam searches)."""
    import numpy as np
    import onnxruntime as ort

    from supernet.transformer.onnx_decoding import first_token

    encoder, decoder = (ort.InferenceSession(f"{stem}.{part}.onnx") for part in ("encoder",
                                                                             "decoder"))
    src = torch.tensor([[5, 6, 7, model.eos_index]])
    feed = dict(zip([o.name for o in encoder.get_outputs()],
                    encoder.run(None, {"src_tokens": src.numpy()}), strict=True))  # fmt: skip
    prev = torch.tensor([[first_token(model)]])
    for spec in decoder.get_inputs():
        if spec.name.startswith("self_"):
            feed[spec.name] = np.zeros([1, spec.shape[1], 0, spec.shape[3]], dtype=np.float32)
    feed["prev_tokens"] = prev.numpy()
    lprobs = decoder.run(None, feed)[0]
    with torch.no_grad():
        logits = model.decode(prev, model.encode(src), model.new_cache())[:, -1]
    np.testing.assert_allclose(lprobs, torch.log_softmax(logits, -1).numpy(), atol=1e-4)
    # whole translations, through the framework's beam search on ONNX Runtime
    from supernet.transformer.beam import beam_search
    from supernet.transformer.onnx_decoding import OnnxTranslationModel

    pad, eos = model.pad_index, model.eos_index
    batch = torch.tensor([[5, 6, 7, 8, 9, eos], [10, 11, eos, pad, pad, pad]])  # right-padded
    got = beam_search(OnnxTranslationModel.load(stem), batch, 4, len_penalty=0.6)
    want = beam_search(model, batch, 4, len_penalty=0.6)
    assert [h.tokens for h in got] == [h.tokens for h in want]


def test_latency_search_stores_and_reuses_bleu(ckpt: Path, tmp_path: Path) -> None:
    first, _ = _search(tmp_path, ckpt, "strategy=random", "budget=2", *LATENCY)
    assert first.objectives == ("bleu", "latency_ms")
    assert all(r.metrics["latency_ms"] > 0 for r in first.rows)
    second, out = _search(tmp_path, ckpt, "strategy=random", "budget=2", *LATENCY)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["measured"] == 0 and summary["reused_from_store"] == 2
    assert [r.metrics for r in second.rows] == [r.metrics for r in first.rows]


def test_lookup_table_latency_search_on_a_transformer(ckpt: Path, tmp_path: Path) -> None:
    # CPU time: with wall time, a machine busy with other tests (the suite runs on two
    # workers) can make the smallest subnet's table sum as slow as 0.92x the largest's
    # (about 0.6x when idle), and a binding bound of 0.9x would then have no solution
    result, out = _search(
        tmp_path, ckpt, "strategy=layernas", "budget=12", "hardware=cpu_lut",
        "hardware.pool=3", "hardware.meter.repeats=2", "hardware.meter.warmup=0",
        "hardware.meter.clock=process", "relative_constraints.cpu_time_ms=0.9",
    )  # fmt: skip
    assert result.objectives == ("bleu", "cpu_time_ms")
    assert all(r.metrics["cpu_time_ms"] > 0 for r in result.rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["constraints"]["cpu_time_ms"] > 0
    table = summary["latency_table"]  # a fresh store: every entry timed by this run
    assert table["measured"] == table["entries"] > 0 and table["reused"] == 0


def test_device_latency_search_on_a_transformer(ckpt: Path, tmp_path: Path) -> None:
    """What a user runs for a device: a kit of the checkpoint, its runner filling the table
    (each timing a beam search over the encoder and decoder-step graphs), then the search on
    those latencies; and `hardware=onnxruntime`, the same timing on this CPU."""
    import subprocess
    import sys

    from search.device_kit import main as kit_main
    from search.hardware.kit import COLUMN, RUNNER, TABLE

    kit = tmp_path / "kit"
    assert kit_main(["--ckpt", str(ckpt), "--out", str(kit), "--count", "10"]) == 0
    subprocess.run([sys.executable, str(kit / RUNNER), "--warmup", "0", "--repeats", "1"],
                   check=True, capture_output=True, cwd=tmp_path)  # fmt: skip
    measured = {r["arch_id"]: float(r[COLUMN]) for r in pd.read_csv(kit / TABLE).to_dict("records")}
    assert len(measured) == 10 and all(ms > 0 for ms in measured.values())
    result, out = _search(
        tmp_path, ckpt, "strategy=random", "budget=3", "hardware=device",
        f"hardware.path={kit / TABLE}", "hardware.min_rows=10",
    )  # fmt: skip
    assert result.objectives == ("bleu", COLUMN)
    assert "measured on kit for the 10 subnets" in (out / "summary.json").read_text()
    for row in result.rows:
        if row.arch_id in measured:
            assert row.metrics[COLUMN] == pytest.approx(measured[row.arch_id], rel=1e-5)
        assert row.metrics[COLUMN] > 0
    result, out = _search(
        tmp_path / "ort", ckpt, "strategy=random", "budget=2", "hardware=onnxruntime",
        "hardware.meter.repeats=2", "hardware.meter.warmup=0",
    )  # fmt: skip
    assert all(row.metrics["latency_ms"] > 0 for row in result.rows)
    assert "beam search (beam 5" in (out / "summary.json").read_text()


def test_accuracy_on_a_translation_checkpoint_is_refused(ckpt: Path, tmp_path: Path) -> None:
    with pytest.raises(ProblemError, match="'accuracy' is not measured.*bleu"):
        _search(tmp_path, ckpt, "strategy=random", "hardware=flops", "objectives=[accuracy,macs]")
    with pytest.raises(ProblemError, match=r"\+reference.loss"):
        _search(tmp_path, ckpt, "strategy=random", "hardware=flops", "objectives=[loss,macs]")
    with pytest.raises(CheckpointError, match="transformer"):
        _search(tmp_path, ckpt, "strategy=random", supernet="mobilenetv3_tiny")
    assert not (tmp_path / "store.sqlite").exists()  # refused before anything was measured


def test_quality_placeholder_resolves_per_evaluator() -> None:
    assert resolve_objectives(["quality", "macs"], ("bleu", "loss"), "t") == ["bleu", "macs"]
    assert resolve_objectives(["quality", "macs"], ("accuracy",), "t") == ["accuracy", "macs"]
    assert resolve_objectives(["accuracy", "speed"], ("accuracy",), "t") == ["accuracy", "speed"]
    assert resolve_objectives(["loss"], ("bleu", "loss"), "t", {"loss": 5}) == ["loss"]
    with pytest.raises(ProblemError, match="bleu"):
        resolve_objectives(["bleu"], ("accuracy",), "image classification")


def test_ray_worker_builds_the_translation_evaluator(translation_run) -> None:
    """What each Ray actor builds (run here in-process): BLEU, with the serial store key."""
    from search.evaluation.distributed import _Worker
    from supernet.checkpoint import supernet_record

    path, metrics = translation_run
    supernet, record = load_supernet(path)
    cls = evaluator_for(record)
    options = cls.options({"device": "cpu", "translation": {"max_sentences": 6}}, record)
    state = {k: v.detach().clone() for k, v in supernet.state_dict().items()}
    threads = torch.get_num_threads()
    try:
        worker = _Worker((supernet_record(supernet), state), record["data_config"], options,
                         f"{cls.__module__}.{cls.__qualname__}", 1, False)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    serial = build_evaluator(cls, supernet, record["data_config"], options)
    assert worker.settings() == serial.settings()
    largest = supernet.space.largest()
    measured, _seconds = worker.measure(largest.to_dict())
    assert measured == serial([largest])[0]
