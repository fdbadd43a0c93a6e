"""Training end to end on the tiny supernet: loss falls, checkpoints rebuild, resume continues."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from supernet.checkpoint import load_supernet, read_checkpoint
from supernet.errors import CheckpointError, DatasetError
from tests.pipelines.conftest import TINY_TRAIN, compose_in


def _metric_rows(run_dir: Path) -> list[dict[str, str]]:
    path = next(run_dir.glob("csv/version_*/metrics.csv"))
    return list(csv.DictReader(path.open()))


def test_short_training_lowers_loss_and_writes_outputs(tiny_run) -> None:
    out, metrics = tiny_run
    rows = _metric_rows(out)
    epoch_losses = [float(r["train/loss_epoch"]) for r in rows if r.get("train/loss_epoch")]
    assert len(epoch_losses) == 2
    assert epoch_losses[1] < epoch_losses[0]
    assert {"val/acc_max", "val/acc_min", "val/acc_random"} <= set(metrics)
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert list((out / "checkpoints").glob("best-*.ckpt"))
    assert (out / "config_resolved.yaml").is_file()


def test_checkpoint_rebuilds_identical_supernet(tiny_ckpt: Path) -> None:
    supernet, record = load_supernet(tiny_ckpt)
    assert record["space"] == "mobilenetv3"
    assert record["data_config"]["_target_"].endswith("GlyphsDataModule")
    state = read_checkpoint(tiny_ckpt)["state_dict"]
    for key, value in supernet.state_dict().items():
        assert torch.equal(value, state[f"supernet.{key}"]), key
    arch = supernet.space.sample(np.random.default_rng(3))
    supernet.set_active(arch)
    again, _ = load_supernet(tiny_ckpt)
    again.set_active(arch)
    x = torch.randn(2, 1, arch["resolution"], arch["resolution"])
    assert torch.allclose(supernet(x), again(x))


def test_resume_continues_epoch_count(tiny_run, tmp_path: Path) -> None:
    from supernet.pipeline import train

    ckpt = tiny_run[0] / "checkpoints" / "last.ckpt"
    out = tmp_path / "train" / "runs" / "resumed"
    overrides = [o for o in TINY_TRAIN if not o.startswith("trainer.max_epochs")]
    train(compose_in("train", out, *overrides, "trainer.max_epochs=3", f"ckpt_path={ckpt}"))
    resumed = read_checkpoint(out / "checkpoints" / "last.ckpt")
    assert resumed["epoch"] == 2  # epochs 0 and 1 came from the checkpoint
    epochs = {int(r["epoch"]) for r in _metric_rows(out) if r.get("epoch")}
    assert epochs == {2}


def test_corrupt_and_foreign_checkpoints_get_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        read_checkpoint(bad)
    torch.save({"state_dict": {}}, tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointError, match="not a supernet checkpoint"):
        read_checkpoint(tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        read_checkpoint(tmp_path / "missing.ckpt")


def test_missing_imagenet_folder_is_a_clear_error(tmp_path: Path) -> None:
    from supernet.data.imagenet import ImageFolderDataModule

    with pytest.raises(DatasetError, match="data.root"):
        ImageFolderDataModule(root=str(tmp_path / "nowhere")).prepare_data()


def test_imagenet_folder_loads_splits_and_checks_classes(tmp_path: Path) -> None:
    from PIL import Image

    from supernet.data.imagenet import ImageFolderDataModule

    rng = np.random.default_rng(0)
    for split, per_class in (("train", 6), ("val", 2)):
        for label in ("cat", "dog", "eel"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    dm = ImageFolderDataModule(
        root=str(tmp_path), image_size=32, val_size=4, num_classes=3, batch_size=5
    )
    dm.prepare_data()
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (14, 4, 6)
    images, labels = next(iter(dm.val_dataloader()))
    assert images.shape == (4, 3, 32, 32) and set(labels.tolist()) <= {0, 1, 2}
    with pytest.raises(DatasetError, match="set data.num_classes=3"):
        ImageFolderDataModule(root=str(tmp_path), num_classes=1000).setup("fit")


def test_cifar_without_network_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    import urllib.request

    from supernet.data.cifar import CIFARDataModule

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DatasetError, match="could not be downloaded"):
        CIFARDataModule(root=str(tmp_path)).prepare_data()


@pytest.mark.slow
def test_wandb_offline_run_holds_metrics(tmp_path: Path, monkeypatch) -> None:
    from supernet.pipeline import train

    monkeypatch.setenv("WANDB_MODE", "offline")
    out = tmp_path / "train" / "runs" / "wandb"
    overrides = [o for o in TINY_TRAIN if not o.startswith(("logger", "trainer.max_epochs"))]
    train(compose_in("train", out, *overrides, "logger=wandb", "trainer.max_epochs=1"))
    runs = list(out.glob("wandb/offline-run-*/run-*.wandb"))
    assert runs, "no offline W&B run was written"
    data = runs[0].read_bytes()
    assert b"val/acc_max" in data and b"train/loss" in data


class _Payload:
    """A Python object in a checkpoint: loading it would run code from the file."""


def test_checkpoints_load_without_running_code_from_the_file(
    tiny_ckpt: Path, tmp_path: Path, monkeypatch
) -> None:
    from supernet.checkpoint import read_record

    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))
    assert read_checkpoint(tiny_ckpt)["nas"]["space"] == "mobilenetv3"
    assert read_record(tiny_ckpt)["space"] == "mobilenetv3"
    assert [c["weights_only"] for c in calls] == [True, True]
    assert [c["mmap"] for c in calls] == [False, True]  # the record alone maps the tensors
    foreign = tmp_path / "pickled.ckpt"
    torch.save({"nas": {"space": "x"}, "obj": _Payload()}, foreign)
    with pytest.raises(CheckpointError, match="ckpt_trusted=true"):
        read_checkpoint(foreign)
    assert isinstance(read_checkpoint(foreign, trusted=True)["obj"], _Payload)
