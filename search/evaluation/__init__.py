"""Evaluators: what a search's budget counts (accuracy or BLEU of one subnet).

Which evaluator scores a checkpoint follows from the checkpoint itself (`evaluator_for`): a
translation supernet's subnets get BLEU (`translation`), the others accuracy (`images`); Ray
workers (`distributed`) run either on many processes or machines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from hydra.utils import instantiate

from search.evaluation.images import ClassificationEvaluator
from search.evaluation.translation import TranslationEvaluator
from supernet.data.translation.vocab import Vocabulary
from supernet.protocol import Supernet
from supernet.space import Arch

__all__ = [
    "EVALUATORS",
    "ClassificationEvaluator",
    "Evaluator",
    "TranslationEvaluator",
    "build_evaluator",
    "evaluator_for",
    "load_datamodule",
]


class Evaluator(Protocol):
    """Scores archs; `settings()` names everything that changes the scores."""

    metric: str

    def __call__(self, archs: Sequence[Arch]) -> list[dict[str, float]]: ...

    def settings(self) -> dict[str, Any]: ...


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
