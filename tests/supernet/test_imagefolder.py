"""Your own ImageFolder data: class count from the folders, splits, timm's transforms."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from timm.data.auto_augment import RandAugment
from timm.data.random_erasing import RandomErasing

from supernet.data.imagenet import ImageFolderDataModule
from supernet.errors import ConfigError, DatasetError
from tests.supernet.imagefolder_helpers import make_image_folder


def _data(root: Path, **kwargs) -> ImageFolderDataModule:
    settings = {"image_size": 16, "resolutions": (12, 16), "val_size": 0.25, "batch_size": 6,
                "calib_images": 8, "calib_batch_size": 4, **kwargs}
    return ImageFolderDataModule(root=str(root), **settings)


def test_class_count_comes_from_the_folders_and_val_is_held_out(tmp_path: Path) -> None:
    data = _data(make_image_folder(tmp_path, per_class=8))  # no val/: no test split
    data.prepare_data()
    data.setup("fit")
    assert data.num_classes == 3 and data.classes == ["cat", "dog", "fox"]
    assert (len(data.train_set), len(data.val_set)) == (18, 6)  # 0.25 of 24 held out
    assert data.test_set is None
    with pytest.raises(DatasetError, match="no test split"):
        data.test_dataloader()


def test_val_folder_is_the_test_split(tmp_path: Path) -> None:
    data = _data(make_image_folder(tmp_path, per_class=8, val_per_class=2), val_size=4)
    data.setup("fit")
    assert (len(data.train_set), len(data.val_set), len(data.test_set)) == (20, 4, 6)
    images, labels = next(iter(data.test_dataloader()))
    assert images.shape == (6, 3, 16, 16) and sorted(labels.tolist()) == [0, 0, 1, 1, 2, 2]


def test_an_explicit_class_count_that_disagrees_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="the data has 3 classes but data.num_classes=5"):
        _data(make_image_folder(tmp_path), num_classes=5).setup("fit")


def test_val_folder_with_other_classes_is_refused(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path, val_per_class=1)
    (root / "val" / "fox").rename(root / "val" / "wolf")
    with pytest.raises(DatasetError, match=r"missing: \['fox'\], extra: \['wolf'\]"):
        _data(root).setup("fit")


def test_missing_or_empty_folders_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no training images"):
        _data(tmp_path / "nowhere").prepare_data()
    (tmp_path / "empty" / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DatasetError, match="not an ImageFolder tree"):
        _data(tmp_path / "empty").setup("fit")


def test_timm_transforms_give_batches_of_the_configured_size(tmp_path: Path) -> None:
    augment = {"auto_augment": "rand-m9-mstd0.5-inc1", "re_prob": 0.5, "scale": [0.5, 1.0]}
    data = _data(make_image_folder(tmp_path, size=23), augment=augment)
    train, evaluate = data.transforms()
    kinds = {type(t) for t in train.transforms}
    assert {RandAugment, RandomErasing} <= kinds  # timm's RandAugment and random erasing
    images, labels = next(iter(data.train_dataloader()))
    assert images.shape == (6, 3, 16, 16) and images.dtype == torch.float32
    assert labels.dtype == torch.int64
    val_images, _ = next(iter(data.val_dataloader()))
    assert val_images.shape == (6, 3, 16, 16)
    calib, _ = next(iter(data.calibration_loader()))
    assert calib.shape == (4, 3, 16, 16)
    # evaluation is deterministic: normalised centre crops
    first = torch.stack([data.val_set[i][0] for i in range(2)])
    assert torch.equal(first, torch.stack([data.val_set[i][0] for i in range(2)]))
    assert abs(float(val_images.mean())) < 3


def test_bad_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="timm.data.create_transform"):
        _data(make_image_folder(tmp_path), augment={"no_such_option": 1}).transforms()
    with pytest.raises(ConfigError, match=r"resolutions=\[12,16\]"):
        _data(tmp_path, resolutions=(16, 32))
    with pytest.raises(ConfigError, match="cannot set"):
        _data(tmp_path, augment={"mean": [0.5, 0.5, 0.5]})
