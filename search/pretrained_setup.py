"""A published supernet (`pretrained=<name>`) as what a search runs on, instead of a checkpoint.

The weights come from the publisher's file (downloaded and cached, or `pretrained.path`); the
data come from the command line (`data=imagenet data.root=...`), checked to be the kind the
weights were trained on; measurements are stored under the weights file's fingerprint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from supernet.checkpoint import supernet_record
from supernet.data.images import ImageDataModule
from supernet.data.translation.base import TranslationDataModule
from supernet.errors import ConfigError
from supernet.pretrained import FORMATS, PretrainedError, Published, load_published
from supernet.protocol import Supernet

log = logging.getLogger(__name__)
DATA_KINDS = {"image classification": ImageDataModule, "translation": TranslationDataModule}


@dataclass(frozen=True)
class PretrainedSource:
    """What `search.pipeline` needs of a published supernet.

    Attributes:
        supernet: ours, holding the published weights (eval mode).
        record: a checkpoint's `nas` record for it (class, config, space, data config).
        weights: the publisher's file; its fingerprint keys the measurements.
        store_dir: where its measurement store goes unless `store_path` says otherwise.
    """

    supernet: Supernet
    record: dict[str, Any]
    weights: Path
    store_dir: Path


def published_spec(node: DictConfig) -> Published:
    """The `pretrained:` config node as a `Published` (its `_target_`)."""
    spec = instantiate(node, _convert_="all")
    if not isinstance(spec, Published):
        raise PretrainedError(f"pretrained: expected a {Published.__name__}, got {spec!r}")
    return spec


def check_data(spec: Published, data: dict[str, Any]) -> None:
    """Refuse data of another kind than the weights' (images for HAT, text for OFA)."""
    target = str(data.get("_target_", ""))
    try:
        cls = get_class(target)
    except Exception:
        return  # not our concern here: instantiating the data config will say what is wrong
    wanted = DATA_KINDS[spec.task]
    if not issubclass(cls, wanted):
        found = next((task for task, kind in DATA_KINDS.items() if issubclass(cls, kind)), None)
        raise ConfigError(
            f"pretrained={spec.name} is a {spec.task} supernet, but the data config "
            f"({cls.__name__}) is {found or 'another kind of'} data; use data={spec.data} "
            "data.root=/path/to/it"
        )
    classes = spec.supernet.get("num_classes")
    if classes is not None and data.get("num_classes") != classes:
        raise ConfigError(
            f"pretrained={spec.name} classifies {classes} classes but data.num_classes="
            f"{data.get('num_classes')}; use data={spec.data} on the full dataset"
        )


def pretrained_source(cfg: DictConfig) -> PretrainedSource:
    """Load `cfg.pretrained`'s supernet and describe it as the pipeline's checkpoint record."""
    spec = published_spec(cfg.pretrained)
    data = cast(dict[str, Any], OmegaConf.to_container(cfg.data, resolve=True))
    check_data(spec, data)
    supernet, weights = load_published(spec)
    log.info("published supernet %s (%s) from %s", spec.name, FORMATS[spec.format].task, weights)
    record = supernet_record(supernet, data)
    record["pretrained"] = spec.name
    if spec.task == "translation":
        record["vocab"] = None  # the data-bin's own dictionaries, checked against the tables
    return PretrainedSource(supernet, record, weights, Path(cfg.paths.log_dir) / "measurements")
