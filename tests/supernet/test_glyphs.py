"""The glyph generator: seeded, balanced, disjoint splits, prefix-stable sizes, a cache keyed by
every shaping setting, and one clear message for bad settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from supernet.data.glyphs import GlyphsDataModule
from supernet.errors import DatasetError

# two fonts and five classes keep a datamodule to well under a second
SMALL: dict[str, Any] = {
    "fonts": ["DejaVuSans.ttf", "cmr10.ttf"],
    "classes": "AB1bq",
    "num_classes": 5,
    "train_size": 60,
    "val_size": 40,
    "test_size": 20,
    "seed": 3,
}


def _arrays(**overrides: Any) -> dict[str, np.ndarray]:
    return GlyphsDataModule(**{**SMALL, **overrides}).generate()


def test_same_seed_same_images_other_seed_other_images() -> None:
    first, again, other = _arrays(), _arrays(), _arrays(seed=4)
    for key in first:
        assert np.array_equal(first[key], again[key]), key
    assert not np.array_equal(first["train_images"], other["train_images"])


def test_classes_are_balanced_in_every_split() -> None:
    arrays = _arrays(train_size=63)
    for split in ("train", "val", "test"):
        counts = np.bincount(arrays[f"{split}_labels"], minlength=5)
        assert counts.max() - counts.min() <= 1, (split, counts)
    assert np.bincount(arrays["val_labels"]).tolist() == [8] * 5


def test_splits_are_disjoint_and_a_smaller_split_is_a_prefix() -> None:
    arrays = _arrays()
    seen = {
        split: {image.tobytes() for image in arrays[f"{split}_images"]}
        for split in ("train", "val", "test")
    }
    assert len(seen["train"]) == 60 and len(seen["val"]) == 40  # no repeats inside a split
    assert not seen["train"] & seen["val"] and not seen["train"] & seen["test"]
    assert not seen["val"] & seen["test"]
    small = _arrays(train_size=25, val_size=10)
    assert np.array_equal(small["train_images"], arrays["train_images"][:25])
    assert np.array_equal(small["val_labels"], arrays["val_labels"][:10])
    assert np.array_equal(small["test_images"], arrays["test_images"])  # other splits unmoved


def test_images_hold_ink_and_noise_in_the_frame() -> None:
    images = _arrays()["train_images"]
    assert images.shape == (60, 24, 24) and images.dtype == np.uint8
    clean = _arrays(distortion={"noise": 0.0, "fragment": 0.0, "lines": 0.0})["train_images"]
    # a glyph fills part of the frame; its border row is mostly paper
    assert 0.03 < (clean > 128).mean() < 0.5
    assert np.abs(images.astype(int) - clean.astype(int)).mean() > 1.0


def test_cache_is_read_back_and_rebuilt_when_a_shaping_setting_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dm = GlyphsDataModule(root=str(tmp_path), **SMALL)
    dm.prepare_data()
    first = dm.cache_file()
    assert first is not None and first.is_file()

    def no_generation(self: GlyphsDataModule) -> None:
        raise AssertionError("regenerated although the cache holds these settings")

    with monkeypatch.context() as patch:
        patch.setattr(GlyphsDataModule, "generate", no_generation)
        cached = GlyphsDataModule(root=str(tmp_path), **SMALL)
        cached.setup("fit")  # reads the file
        # settings that do not shape the images share the file
        GlyphsDataModule(root=str(tmp_path), **SMALL, batch_size=7, epoch_val_size=5).setup()
    changed = GlyphsDataModule(root=str(tmp_path), **SMALL, distortion={"rotation": 30.0})
    changed.prepare_data()
    assert changed.cache_file() != first and changed.cache_file().is_file()
    assert not np.array_equal(changed.generate()["train_images"], dm.generate()["train_images"])
    assert GlyphsDataModule(root=str(tmp_path), **{**SMALL, "val_size": 41}).cache_file() != first


def test_datamodule_serves_normalised_batches_and_an_epoch_subset() -> None:
    dm = GlyphsDataModule(**SMALL, batch_size=16, epoch_val_size=24, calib_images=30)
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (16, 1, 24, 24) and labels.max() < 5
    assert abs(float(dm.train_set.base.tensors[0].mean())) < 1e-4  # type: ignore[union-attr]
    assert sum(len(y) for _, y in dm.val_dataloader()) == 24  # training's per-epoch subset
    assert sum(len(y) for _, y in dm.full_val_dataloader()) == 40  # what a search scores
    assert sum(len(y) for _, y in dm.calibration_loader()) == 30


def test_a_search_scores_the_whole_validation_split() -> None:
    from search.evaluation.images import ClassificationEvaluator

    dm = GlyphsDataModule(**SMALL, batch_size=16, epoch_val_size=24)
    dm.setup("fit")
    evaluator = ClassificationEvaluator(None, dm)  # type: ignore[arg-type]  # counts only
    assert evaluator.val_images == 40


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"distortion": {"spin": 1.0}}, "unknown data.distortion key"),
        ({"num_classes": 47}, "set data.num_classes=5"),
        ({"fonts": ["NoSuchFont.ttf"]}, "font 'NoSuchFont.ttf'"),
        ({"classes": "AA1bq"}, "repeats a character"),
        ({"test_size": 0}, "at least one image"),
    ],
)
def test_bad_settings_get_one_clear_message(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        GlyphsDataModule(**{**SMALL, **overrides}).generate()
