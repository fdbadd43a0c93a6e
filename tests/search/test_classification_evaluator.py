"""Image validation streams through the loaders: nothing held, fixed calibration, capped splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from search.evaluation.images import ClassificationEvaluator
from supernet.calibration import evaluate_accuracy, recalibrate_bn
from supernet.errors import ConfigError
from supernet.mobilenetv3 import MobileNetV3Supernet


class CountingImages(Dataset):
    """Random 16-pixel images whose reads are recorded (index order)."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 3, 16, 16, generator=g)
        self.labels = torch.randint(0, 4, (n,), generator=g)
        self.reads: list[int] = []

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        self.reads.append(i)
        return self.images[i], int(self.labels[i])


class Data:
    """The two loaders an image evaluator asks for."""

    def __init__(self) -> None:
        self.train, self.val = CountingImages(40, 0), CountingImages(30, 1)

    def calibration_loader(self) -> DataLoader:
        return DataLoader(Subset(self.train, [3, 1, 4, 15, 9, 2, 6, 5]), batch_size=4)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=8)


@pytest.fixture
def supernet() -> MobileNetV3Supernet:
    torch.manual_seed(0)
    return MobileNetV3Supernet(
        num_classes=4, kernel_sizes=[3, 5], expand_ratios=[3, 6], depths=[1, 2],
        resolutions=[16], stem_stride=1, first_unit_stride=1,
        stage_channels=[8, 8, 16, 16, 24], head_channels=[32, 48],
    ).eval()


def test_every_subnet_streams_the_same_images(supernet: MobileNetV3Supernet) -> None:
    data = Data()
    evaluator = ClassificationEvaluator(supernet, data)
    assert data.train.reads == [] and data.val.reads == []  # nothing read up front
    archs = [supernet.space.largest(), supernet.space.sample(np.random.default_rng(1))]
    scores = evaluator(archs)
    assert data.train.reads == [3, 1, 4, 15, 9, 2, 6, 5] * 2  # the fixed calibration subset
    assert data.val.reads == list(range(30)) * 2  # the whole split, read again per subnet
    assert evaluator.settings()["val_images"] == 30
    assert evaluator.settings()["calib_images"] == 8
    net = supernet.export_subnet(archs[1])
    recalibrate_bn(net, data.calibration_loader(), 16)
    assert scores[1]["accuracy"] == evaluate_accuracy(net, data.val_dataloader(), 16)


def test_max_val_images_keeps_the_first_images(supernet: MobileNetV3Supernet) -> None:
    data = Data()
    evaluator = ClassificationEvaluator(supernet, data, max_val_images=12)
    evaluator([supernet.space.smallest()])
    assert data.val.reads == list(range(12))
    assert evaluator.settings()["val_images"] == 12


def test_caps_must_be_positive(supernet: MobileNetV3Supernet) -> None:
    with pytest.raises(ConfigError, match="evaluation.max_val_images must be ≥ 1"):
        ClassificationEvaluator(supernet, Data(), max_val_images=0)


def test_cuda_without_gpu_is_one_clear_error(
    supernet: MobileNetV3Supernet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="evaluation.device=cuda needs a CUDA GPU"):
        ClassificationEvaluator(supernet, Data(), device="cuda")
