"""Validation of subnets on a trained supernet: what a search's budget counts.

For image classification, a subnet is exported as a static network, its BatchNorm
statistics are re-estimated on the fixed calibration subset of training images, and it is
scored on the validation split (never the test split). The settings that change the number
are part of the store key.

Which evaluator scores a checkpoint follows from the checkpoint itself (`evaluator_for`): a
translation supernet's subnets get BLEU (search.translation_evaluator), the others accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch
from hydra.utils import instantiate

from search.translation_evaluator import TranslationEvaluator
from supernet.calibration import evaluate_accuracy, recalibrate_bn
from supernet.data.translation.vocab import Vocabulary
from supernet.protocol import Supernet
from supernet.space import Arch


class Evaluator(Protocol):
    """Scores archs; `settings()` names everything that changes the scores."""

    metric: str

    def __call__(self, archs: Sequence[Arch]) -> list[dict[str, float]]: ...

    def settings(self) -> dict[str, Any]: ...


class ClassificationEvaluator:
    """Top-1 validation accuracy (percent) after BN recalibration.

    Args:
        supernet: the trained supernet (weights are not changed: subnets are exported).
        datamodule: gives `calibration_loader()` and `full_val_dataloader()`.
        device: where subnets run.
        max_val_batches: cap on validation batches (None: the whole split).
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
    ) -> None:
        self.supernet = supernet
        self.device = torch.device(device)
        self.max_val_batches = max_val_batches
        # materialise the fixed subsets once: every subnet sees exactly the same images
        self.calibration = list(datamodule.calibration_loader())
        val = list(datamodule.full_val_dataloader())  # not training's per-epoch subset
        self.validation = val if max_val_batches is None else val[:max_val_batches]
        self.calib_images = sum(int(x.shape[0]) for x, _ in self.calibration)
        self.val_images = sum(int(x.shape[0]) for x, _ in self.validation)

    def settings(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "split": "val",
            "calib_images": self.calib_images,
            "val_images": self.val_images,
        }

    def score(self, arch: Arch) -> dict[str, float]:
        net = self.supernet.export_subnet(arch).to(self.device)
        net.to(memory_format=torch.channels_last)
        resolution = arch.get("resolution")
        recalibrate_bn(net, self.calibration, resolution, self.device)
        return {"accuracy": evaluate_accuracy(net, self.validation, resolution, self.device)}

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
