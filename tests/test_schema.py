"""The configuration schemas: what they accept and refuse, and that they agree with conf/, with
the constructors they describe and with the reference in the documentation."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import pytest
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

from search.schema import SEARCH_OPTIONS, SearchConfig, reference_markdown
from supernet.errors import ConfigError
from supernet.schema import (
    TRAIN_GROUPS,
    TRAIN_OPTIONS,
    TrainConfig,
    check_config,
    check_group,
    check_node,
    describe,
    section,
    setting,
)
from supernet.schema.core import HYDRA_KEYS, _keywords
from tests.conftest import CONF_DIR, ROOT

SEARCH_GROUPS = ("strategy", "hardware", "space", "pretrained")
# groups whose every option has a schema covering every key of its YAML
SCHEMA_GROUPS = {"trainer", "data", "module", "recipe", "strategy", "hardware", "space",
                 "pretrained"}  # fmt: skip
GROUP_NAMES = {p.name for p in CONF_DIR.iterdir() if p.is_dir()}
# options that need another supernet than the default to compose
PARTNER = {"translation": "supernet=transformer_tiny"}


@dataclass
class Toy:
    count: int = setting("a count", ge=1)
    ratio: float = setting("a fraction", gt=0, le=1)
    flag: bool = setting("a switch")
    name: str | None = setting("a name", choices=("a", "b", None))
    sizes: list[int] = setting("sizes", ge=1)
    bounds: dict[str, float | None] = setting("bounds", gt=0)


@dataclass
class Outer:
    toy: Toy = section(Toy, "nested")


def _problems(**values) -> list[str]:
    return check_node(Toy, OmegaConf.create(values), "toy")


def test_types_and_ranges_are_checked_with_the_key_and_the_value() -> None:
    assert _problems(count=3, ratio=1, flag=True, name=None, sizes=[1, 2], bounds={"a": None}) == []
    assert _problems(count=10.7) == ["toy.count=10.7: expected an integer ≥ 1"]
    assert _problems(count="abc") == ["toy.count=abc: expected an integer ≥ 1"]
    assert _problems(count=True) == ["toy.count=true: expected an integer ≥ 1"]
    assert _problems(count=0) == ["toy.count=0: expected an integer ≥ 1"]
    assert _problems(ratio=0) == ["toy.ratio=0: expected a number in (0, 1]"]
    assert _problems(flag="yes") == ["toy.flag=yes: expected true or false"]
    assert _problems(name="c") == ["toy.name=c: expected one of a, b, null"]
    assert _problems(sizes=[1, 0]) == ["toy.sizes=[1, 0]: expected a list of integers ≥ 1"]
    assert _problems(sizes=3) == ["toy.sizes=3: expected a list of integers ≥ 1"]
    assert _problems(bounds={"a": -1, "b": 2}) == ["toy.bounds.a=-1: expected a number > 0 or null"]


def test_interpolations_are_checked_where_they_point_and_nested_nodes_strictly() -> None:
    cfg = OmegaConf.create({"seed": "abc", "toy": {"count": "${seed}"}})
    assert check_node(Toy, cfg.toy, "toy") == []  # the source key is the one to blame
    nested = OmegaConf.create({"toy": {"count": 0, "typo": 1}})
    assert check_node(Outer, nested, "") == [
        "toy.count=0: expected an integer ≥ 1",
        "toy.typo is not a setting of toy; its settings are bounds, count, flag, name, ratio, "
        "sizes",
    ]


def test_describe_says_what_is_allowed() -> None:
    rules = {f.name: f.metadata["rule"] for f in fields(Toy)}
    assert describe(int | None, rules["count"]) == "an integer ≥ 1 or null"
    assert describe(float, rules["ratio"]) == "a number in (0, 1]"


def test_unknown_arguments_of_an_option_are_named_with_its_settings() -> None:
    node = OmegaConf.create({"_target_": "search.strategies.random.RandomSearch", "tries": 1})
    assert check_group(node, "strategy", SEARCH_OPTIONS) == [
        "strategy.tries is not a setting of RandomSearch; its settings are batch_size, max_tries"
    ]


def test_every_violation_is_in_one_message(make_cfg) -> None:
    cfg = make_cfg("search", "budget=0", "seed=x", "strategy.population=1")
    with pytest.raises(ConfigError) as err:
        check_config(cfg, SearchConfig, SEARCH_GROUPS, SEARCH_OPTIONS)
    assert str(err.value).count("; ") == 2 and "\n" not in str(err.value)


def _options(primary: str, groups: tuple[str, ...]) -> list[tuple[str, str, str]]:
    return [(primary, g, p.stem) for g in groups for p in sorted((CONF_DIR / g).glob("*.yaml"))]


OPTIONS = _options("train", TRAIN_GROUPS) + _options("search", SEARCH_GROUPS)


@pytest.mark.parametrize(("primary", "group", "option"), OPTIONS)
def test_every_shipped_option_passes_its_schema(make_cfg, primary, group, option) -> None:
    extra = [PARTNER[option]] if option in PARTNER else []
    cfg = make_cfg(primary, *extra, f"{group}={option}")
    schema, groups, registry = (
        (TrainConfig, TRAIN_GROUPS, TRAIN_OPTIONS) if primary == "train"
        else (SearchConfig, SEARCH_GROUPS, SEARCH_OPTIONS)
    )  # fmt: skip
    check_config(cfg, schema, groups, registry)
    if group in SCHEMA_GROUPS:  # a new option, or a new key: its schema says what it may be
        node = cfg[group]
        target = get_object(node._target_)
        own = registry[f"{target.__module__}.{target.__qualname__}"]
        keys = {k for k in node if k not in HYDRA_KEYS and not isinstance(node[k], DictConfig)}
        assert keys <= {f.name for f in fields(own)}, f"{own.__name__} lacks keys"


@pytest.mark.parametrize("path", sorted((CONF_DIR / "experiment").glob("*.yaml")), ids=str)
def test_every_experiment_passes_the_schema(make_cfg, path: Path) -> None:
    if path.stem.startswith("search"):
        check_config(make_cfg("search", f"experiment={path.stem}"), SearchConfig,
                     SEARCH_GROUPS, SEARCH_OPTIONS)  # fmt: skip
    else:
        check_config(make_cfg("train", f"experiment={path.stem}"), TrainConfig, TRAIN_GROUPS,
                     TRAIN_OPTIONS)  # fmt: skip


@pytest.mark.parametrize(
    ("target", "schema"), [*TRAIN_OPTIONS.items(), *SEARCH_OPTIONS.items()], ids=lambda x: str(x)
)
def test_schema_keys_are_arguments_and_structured_config_fields(target: str, schema: type) -> None:
    keywords = _keywords(get_object(target))
    if keywords is not None:
        assert {f.name for f in fields(schema)} <= keywords
    assert set(OmegaConf.structured(schema)) == {f.name for f in fields(schema)}


def test_top_level_schemas_are_structured_configs_of_the_yaml(make_cfg) -> None:
    for name, schema in (("train", TrainConfig), ("search", SearchConfig)):
        cfg = make_cfg(name)
        keys = {f.name for f in fields(schema)}
        assert keys == set(cfg) - GROUP_NAMES, f"{name}.yaml and its schema differ"
        OmegaConf.structured(schema)


def test_the_documented_reference_is_the_schema() -> None:
    doc = (ROOT / "docs" / "guides" / "errors.md").read_text()
    assert reference_markdown() in doc, "regenerate it with `python -m search.schema`"
