"""Validation of subnets on a trained supernet: what a search's budget counts.

For image classification, a subnet is exported as a static network, its BatchNorm
statistics are re-estimated on the fixed calibration subset of training images (OFA's
protocol), and it is scored on the validation split (never the test split), streamed batch by
batch. The settings that change the number
are part of the store key.

Which evaluator scores a checkpoint follows from the checkpoint itself (`evaluator_for`): a
translation supernet's subnets get BLEU (search.translation_evaluator), the others accuracy.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence, Sized
from typing import Any, Protocol, cast

import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader, Subset

from search.translation_evaluator import TranslationEvaluator
from supernet.calibration import evaluate_accuracy, recalibrate_bn
from supernet.data.translation.vocab import Vocabulary
from supernet.errors import ConfigError
from supernet.protocol import Supernet
from supernet.space import Arch


class Evaluator(Protocol):
    """Scores archs; `settings()` names everything that changes the scores."""

    metric: str

    def __call__(self, archs: Sequence[Arch]) -> list[dict[str, float]]: ...

    def settings(self) -> dict[str, Any]: ...


def evaluation_device(device: str | torch.device) -> torch.device:
    """`evaluation.device` as a torch device; one clear error when CUDA is asked but absent."""
    try:
        found = torch.device("cuda" if str(device).lower() == "gpu" else device)
    except RuntimeError:
        raise ConfigError(f"evaluation.device={device!r} is no device; use cpu or cuda") from None
    if found.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"evaluation.device={device} needs a CUDA GPU, none is visible "
            "(torch.cuda.is_available() is False); use evaluation.device=cpu"
        )
    return found


def _capped(loader: DataLoader, max_images: int | None) -> DataLoader:
    """`loader` over only the first `max_images` examples of its dataset (same settings)."""
    dataset: Any = loader.dataset
    if max_images is None or max_images >= len(dataset):
        return loader
    return DataLoader(
        Subset(dataset, range(max_images)),
        batch_size=loader.batch_size,
        shuffle=False,
        num_workers=loader.num_workers,
        persistent_workers=loader.num_workers > 0,
        pin_memory=loader.pin_memory,
    )


class ClassificationEvaluator:
    """Top-1 validation accuracy (percent) after BN recalibration.

    Images stream through the data module's loaders for every subnet, so no split is held in
    memory (ImageNet's validation images would not fit); the calibration subset is a fixed
    list of training images in a fixed order, the same for every subnet.

    Args:
        supernet: the trained supernet (weights are not changed: subnets are exported).
        datamodule: gives `calibration_loader()` and `val_dataloader()`.
        device: where subnets run (`cuda` needs a visible GPU).
        max_val_batches: cap on validation batches (None: the whole split).
        max_val_images: cap on validation images, the first ones of the split (None: all).
    """

    metric = "accuracy"
    metrics = ("accuracy",)
    task = "image classification"

    def __init__(
        self,
        supernet: Supernet,
        datamodule: Any,
        device: str | torch.device = "cpu",
        max_val_batches: int | None = None,
        max_val_images: int | None = None,
    ) -> None:
        for name, cap in (("max_val_batches", max_val_batches), ("max_val_images", max_val_images)):
            if cap is not None and cap < 1:
                raise ConfigError(f"evaluation.{name} must be ≥ 1 or null, got {cap}")
        self.supernet = supernet
        self.device = evaluation_device(device)
        self.max_val_batches = max_val_batches
        self.calibration = datamodule.calibration_loader()
        self.validation = _capped(datamodule.val_dataloader(), max_val_images)
        self.calib_images = len(cast(Sized, self.calibration.dataset))
        self.val_images = len(cast(Sized, self.validation.dataset))
        if max_val_batches is not None and self.validation.batch_size:
            self.val_images = min(self.val_images, max_val_batches * self.validation.batch_size)

    def settings(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "split": "val",
            "calib_images": self.calib_images,
            "val_images": self.val_images,
        }

    def _validation_batches(self) -> Iterable[Any]:
        return itertools.islice(self.validation, self.max_val_batches)

    def score(self, arch: Arch) -> dict[str, float]:
        net = self.supernet.export_subnet(arch).to(self.device)
        net.to(memory_format=torch.channels_last)
        resolution = arch.get("resolution")
        recalibrate_bn(net, self.calibration, resolution, self.device)
        accuracy = evaluate_accuracy(net, self._validation_batches(), resolution, self.device)
        return {"accuracy": accuracy}

    def __call__(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        return [self.score(a) for a in archs]

    @staticmethod
    def handles(record: Mapping[str, Any]) -> bool:
        """Any checkpoint no more specific evaluator claims."""
        return True

    @staticmethod
    def options(evaluation: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
        """Constructor arguments from the `evaluation:` config block."""
        return {
            "device": evaluation.get("device", "cpu"),
            "max_val_batches": evaluation.get("max_val_batches"),
            "max_val_images": evaluation.get("max_val_images"),
        }


# the first whose `handles(record)` is true scores a checkpoint; the last takes any
EVALUATORS: tuple[Any, ...] = (TranslationEvaluator, ClassificationEvaluator)


def evaluator_for(record: Mapping[str, Any]) -> Any:
    """The evaluator class of a checkpoint's `nas` record (translation or classification)."""
    return next(cls for cls in EVALUATORS if cls.handles(record))


def load_datamodule(data_config: Mapping[str, Any], vocab: Mapping[str, Any] | None = None) -> Any:
    """The checkpoint's data, set up; text is tokenised with the checkpoint's vocabularies."""
    datamodule = instantiate(dict(data_config))
    if vocab is not None:
        datamodule.use_vocabulary(
            Vocabulary.from_state(dict(vocab["src"])), Vocabulary.from_state(dict(vocab["tgt"]))
        )
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def build_evaluator(
    cls: Any, supernet: Supernet, data_config: Mapping[str, Any], options: Mapping[str, Any]
) -> Any:
    """An evaluator of class `cls` on its data: how the search and every Ray worker build one."""
    datamodule = load_datamodule(data_config, options.get("vocab"))
    return cls(supernet, datamodule, **options)
