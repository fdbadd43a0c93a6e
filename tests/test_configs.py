"""Every option of every config group composes, and every `_target_` in it instantiates."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from hydra.utils import get_class, get_method, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from supernet.errors import ConfigError
from supernet.pipeline import check_accelerator
from tests.conftest import CONF_DIR

# groups whose options select whole pipelines rather than one object
SKIP_GROUPS = {"hydra", "paths", "experiment", "hparams_search"}  # _global_ packages


def _options() -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    covered: set[str] = set()
    for primary in ("train", "search"):
        if not (CONF_DIR / f"{primary}.yaml").exists():
            continue
        primary_cfg = OmegaConf.load(CONF_DIR / f"{primary}.yaml")
        groups = set()
        for entry in primary_cfg.get("defaults", []):
            if isinstance(entry, (dict, DictConfig)):
                groups.update(k for k in entry if not str(k).startswith("override"))
        for group in sorted(groups - SKIP_GROUPS - covered):
            for path in sorted((CONF_DIR / group).glob("*.yaml")):
                found.append((primary, group, path.stem))
        covered |= groups
    return found


def _targets(node, path: str = "") -> list[tuple[str, str]]:
    out = []
    if isinstance(node, DictConfig):
        if "_target_" in node:
            out.append((path, node._target_))
        for key in node:
            out += _targets(node._get_node(key), f"{path}.{key}")
    elif isinstance(node, ListConfig):
        for i, item in enumerate(node):
            out += _targets(item, f"{path}[{i}]")
    return out


OPTIONS = _options()


def test_every_group_has_options() -> None:
    assert {g for _, g, _ in OPTIONS} >= {"data", "supernet", "module", "recipe", "trainer"}


HYDRA_KEYS = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}
# groups built for real here; the others need data on disk or vocabularies (their pipelines
# are tested end to end elsewhere) and are checked against their constructors' signatures
BUILT = {"data", "recipe", "trainer", "strategy", "hardware", "callbacks", "logger", "module"}


def _check_signature(node: DictConfig, target: str) -> None:
    try:
        obj = get_class(target)
    except (ImportError, ValueError):
        obj = get_method(target)
    keys = {k for k in node if k not in HYDRA_KEYS}
    params = inspect.signature(obj).parameters.values()
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        inspect.signature(obj).bind_partial(**{k: None for k in keys})


def _build(cfg: DictConfig, group: str):
    if group == "module":
        supernet = instantiate(cfg.supernet, **_tiny_supernet_kwargs(cfg))
        return instantiate(cfg.module, supernet=supernet, recipe=instantiate(cfg.recipe))
    if group == "logger":
        from supernet.pipeline import build_loggers

        return build_loggers(cfg)
    if group == "callbacks":
        from supernet.pipeline import build_callbacks

        return build_callbacks(cfg)
    return instantiate(cfg[group])


def _tiny_supernet_kwargs(cfg: DictConfig) -> dict:
    """Vocabulary facts a translation supernet gets from its data, for a config check."""
    params = inspect.signature(get_class(cfg.supernet._target_)).parameters
    facts = {"src_vocab_size": 40, "tgt_vocab_size": 40, "pad_index": 1, "eos_index": 2,
             "bos_index": 0, "unk_index": 3}
    return {k: v for k, v in facts.items() if k in params and k not in cfg.supernet}


# options that only make sense with another supernet than the default
PARTNER = {("module", "translation"): "supernet=transformer_tiny",
           ("callbacks", "translation"): "supernet=transformer_tiny"}


@pytest.mark.parametrize(("primary", "group", "option"), OPTIONS)
def test_option_composes_and_instantiates(make_cfg, primary: str, group: str, option: str) -> None:
    extra = [PARTNER[(group, option)]] if (group, option) in PARTNER else []
    cfg = make_cfg(primary, *extra, f"{group}={option}")
    OmegaConf.to_container(cfg[group], resolve=True)  # every interpolation resolves
    targets = _targets(cfg[group], group)
    for path, target in targets:
        node = OmegaConf.select(cfg, path.lstrip("."))
        _check_signature(node, target)
    if group == "trainer" and not torch.cuda.is_available() and cfg.trainer.accelerator != "cpu":
        with pytest.raises(ConfigError, match="GPU"):
            check_accelerator(cfg.trainer)
        return
    if group in BUILT and targets:
        assert _build(cfg, group) is not None


@pytest.mark.parametrize("path", sorted(Path(CONF_DIR, "experiment").glob("*.yaml")), ids=str)
def test_experiments_compose(make_cfg, path: Path) -> None:
    primary = "search" if path.stem.startswith("search") else "train"
    cfg = make_cfg(primary, f"experiment={path.stem}")
    OmegaConf.resolve(cfg)
