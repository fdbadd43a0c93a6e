"""Bad input to `python train.py supernet=transformer`: one clear message, exit code 2, and the
files already there (corpus, checkpoint) left as they were."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from supernet.runtime import EXIT_USER_ERROR, run_cli
from tests.conftest import CONF_DIR, ROOT
from tests.text_corpus import number_corpus

TINY = (
    "supernet=transformer_tiny",
    "logger=csv",
    "threads=1",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
)
TEXT = ("data=parallel_text", "data.vocab_size=60", "data.max_tokens=400")



def _cfg(out: Path, corpus: Path, *overrides: str, data: tuple[str, ...] = TEXT) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name="train", overrides=[*TINY, *data, f"data.root={corpus}", *overrides]
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        cfg.paths.log_dir = str(out.parent)
    return cfg


def _fails(cfg: DictConfig, capsys: pytest.CaptureFixture[str]) -> str:
    from supernet.pipeline import train

    with pytest.raises(SystemExit) as exit_info:
        run_cli(train, cfg)
    assert exit_info.value.code == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and not any("Traceback" in line for line in err)
    return err[-1]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A checkpoint of the tiny Transformer trained for two steps, and its corpus."""
    from supernet.pipeline import train

    root = tmp_path_factory.mktemp("resume")
    corpus = number_corpus(root / "corpus")
    train(_cfg(root / "run", corpus))
    return root / "run" / "checkpoints" / "last.ckpt", corpus


def test_a_run_leaves_checkpoints_config_and_metrics(tiny_checkpoint: tuple[Path, Path]) -> None:
    run = tiny_checkpoint[0].parents[1]
    assert list((run / "checkpoints").glob("best-*.ckpt"))
    assert "NumberPhrases" not in (run / "config_resolved.yaml").read_text()  # data= was honoured
    header = next(run.glob("csv/version_*/metrics.csv")).read_text().splitlines()[0].split(",")
    assert {"val/bleu_max", "val/bleu_min", "val/loss_max", "val/loss_min"} <= set(header)


@pytest.mark.slow
def test_train_py_reports_an_empty_corpus_file(tmp_path: Path) -> None:
    corpus = number_corpus(tmp_path / "corpus")
    (corpus / "valid.fr").write_text("\n")
    cmd = [sys.executable, "train.py", *TINY, *TEXT, f"data.root={corpus}",
           f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == EXIT_USER_ERROR
    assert done.stderr.strip().splitlines()[-1] == f"error: corpus file {corpus}/valid.fr is empty"
    assert "Traceback" not in done.stderr
    assert (corpus / "train.en").read_text().startswith("one\n")


def test_resuming_with_other_dictionaries_is_one_message(
    tiny_checkpoint: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    ckpt, _ = tiny_checkpoint
    before = _digest(ckpt)
    other = number_corpus(tmp_path / "other", first=5000, n=60)
    cfg = _cfg(tmp_path / "run", other, f"ckpt_path={ckpt}", "data.vocab_size=50",
               "trainer.max_epochs=2")  # fmt: skip
    message = _fails(cfg, capsys)
    assert "source dictionary" in message and "does not match the checkpoint" in message
    assert _digest(ckpt) == before


def test_resuming_into_another_space_is_one_message(
    tiny_checkpoint: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    ckpt, corpus = tiny_checkpoint
    before = _digest(ckpt)
    cfg = _cfg(tmp_path / "run", corpus, f"ckpt_path={ckpt}", "supernet.ffn_dims=[32,64]")
    message = _fails(cfg, capsys)
    assert "another configuration of its space" in message
    assert "ffn_dims: [32, 48] → [32, 64]" in message
    assert _digest(ckpt) == before
    # dropout is not part of the space: resuming with another rate trains on
    from supernet.pipeline import train

    resumed = _cfg(tmp_path / "again", corpus, f"ckpt_path={ckpt}", "supernet.dropout=0.2",
                   "trainer.max_epochs=2")  # fmt: skip
    assert "val/bleu_max" in train(resumed)
