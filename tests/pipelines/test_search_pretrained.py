"""Searching published supernets end to end: OFA's MobileNetV3 through `search.py` on an
ImageFolder, HAT's SuperTransformer on a fairseq data-bin; bad input is one `error:` line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from search.store import checkpoint_fingerprint
from supernet.pretrained import published, save_as_published
from tests.conftest import ROOT
from tests.pipelines.conftest import compose_in


def image_folder(root: Path, classes: int = 1000, per_class: int = 1) -> Path:
    """`root/{train,val}/<class>/*.png`: tiny random images, ImageNet's number of classes."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def ofa_weights(path: Path) -> Path:
    """Random full-size OFA MobileNetV3 w1.0 weights in OFA's published format."""
    from supernet.mobilenetv3 import MobileNetV3Supernet

    spec = published("ofa_mbv3_w10")
    torch.manual_seed(0)
    return save_as_published(spec, MobileNetV3Supernet(**spec.supernet), path)


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "search.py", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_ofa_search_through_the_cli(tmp_path: Path) -> None:
    data = image_folder(tmp_path / "imagenet")
    weights = ofa_weights(tmp_path / "ofa_mbv3_d234_e346_k357_w1.0")
    logs = tmp_path / "logs"
    proc = _cli(
        "pretrained=ofa_mbv3_w10", f"pretrained.path={weights}", "data=imagenet",
        f"data.root={data}", "strategy=random", "budget=3", "evaluation.max_val_images=64",
        # small enough for a test on a shared CPU: held-out and calibration images, timing
        "data.val_size=64", "data.calib_images=16", "data.num_workers=0",
        "hardware.meter.warmup=1", "hardware.meter.repeats=3", "wandb.enabled=false",
        f"paths.log_dir={logs}", f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    assert len(results) == 3 and results["accuracy"].between(0, 100).all()
    store = logs / "measurements" / f"{checkpoint_fingerprint(weights)[:16]}.sqlite"
    assert store.is_file()  # measurements keyed by the weights file's fingerprint
    assert (tmp_path / "run" / "best").is_dir()


@pytest.mark.slow
def test_unknown_pretrained_name_through_the_cli(tmp_path: Path) -> None:
    proc = _cli("pretrained=ofa_huge", f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0
    assert "ofa_huge" in proc.stderr and "ofa_mbv3_w10" in proc.stderr


def _run_cli(cfg) -> tuple[int, str]:
    """`search.py`'s entry point in this process: (exit code, stderr)."""
    import contextlib
    import io

    from search.pipeline import run
    from supernet.runtime import run_cli

    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        run_cli(run, cfg)
    return int(exit_info.value.code or 0), err.getvalue()


def test_hat_with_image_data_is_one_error(tmp_path: Path) -> None:
    cfg = compose_in("search", tmp_path / "run", "pretrained=hat_wmt14ende", "data=imagenet",
                     f"data.root={tmp_path}", f"pretrained.path={tmp_path / 'never-read.pt'}")
    code, err = _run_cli(cfg)
    assert code == 2
    assert err.startswith("error: pretrained=hat_wmt14ende is a translation supernet")
    assert "use data=wmt14_en_de" in err and err.count("\n") == 1


def test_ofa_on_too_few_classes_is_one_error(tmp_path: Path) -> None:
    cfg = compose_in("search", tmp_path / "run", "pretrained=ofa_mbv3_w10", "data=cifar10")
    code, err = _run_cli(cfg)
    assert code == 2 and "classifies 1000 classes but data.num_classes=10" in err


def test_not_a_checkpoint_is_one_error(tmp_path: Path) -> None:
    bad = tmp_path / "weights.pth"
    bad.write_text("not weights")
    cfg = compose_in("search", tmp_path / "run", "pretrained=ofa_mbv3_w12",
                     f"pretrained.path={bad}", f"data.root={tmp_path}")
    code, err = _run_cli(cfg)
    assert code == 2 and "is not a complete PyTorch checkpoint" in err


@pytest.mark.slow
def test_hat_search_on_a_data_bin(tmp_path: Path) -> None:
    """HAT's WMT'14 En-Fr SuperTransformer (random weights, full size) on a tiny data-bin:
    beam 4 / length penalty 0.6, tokenized BLEU as the main metric beside sacreBLEU."""
    pytest.importorskip("fairseq")
    from search.pipeline import run
    from supernet.transformer.model import TransformerSupernet
    from tests.supernet.test_translation_data import _binarize, _toy_corpus

    _toy_corpus(tmp_path / "corpus")
    _binarize(tmp_path / "corpus", tmp_path / "bin")
    symbols = 4 + len((tmp_path / "bin" / "dict.en.txt").read_text().splitlines())
    spec = published("hat_wmt14enfr")
    torch.manual_seed(0)
    net = TransformerSupernet(**spec.supernet, src_vocab_size=symbols, tgt_vocab_size=symbols)
    weights = save_as_published(spec, net, tmp_path / "HAT_wmt14enfr_super_space0.pt")
    cfg = compose_in(
        "search", tmp_path / "run", "pretrained=hat_wmt14enfr", f"pretrained.path={weights}",
        f"data.root={tmp_path / 'bin'}", "data.bpe=none", "strategy=random", "budget=2",
        "hardware=params", "evaluation.translation.max_sentences=4", "wandb.enabled=false",
    )
    assert cfg.evaluation.translation.beam_size == 4
    result = run(cfg)
    rows = pd.read_csv(tmp_path / "run" / "results.csv")
    assert len(result.rows) == 2 and len(rows) == 2
    assert {"bleu_tokenized", "sacrebleu"} <= set(result.rows[0].metrics)
    assert {"bleu", "bleu_tokenized", "sacrebleu", "loss"} <= set(rows.columns)
    assert rows["bleu"].equals(rows["bleu_tokenized"])  # the HAT option scores as HAT reports
