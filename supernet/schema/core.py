"""How a schema says what a setting may be, and how a config node is checked against it.

A schema is a dataclass whose fields are the user-facing keys of one config node. Each field
carries its type (the annotation) and a `Rule` (range, choices, one-line help) in its metadata;
its default is OmegaConf's MISSING, because the YAML files under conf/ own the defaults; so the
schemas are valid OmegaConf structured configs (`OmegaConf.structured(schema)`). Values are
typed strictly, as a command line is parsed: an integer key refuses `10.7`, `abc` and `true`,
a number key takes `3` as `3.0`, a switch takes only `true` or `false` (OmegaConf's own
conversion would turn `"yes"` into true and `"10"` into 10). Only the keys a node has are
checked; a key the YAML lacks keeps the constructor's default.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union, get_args, get_origin, get_type_hints

from hydra.utils import get_object
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from supernet.errors import ConfigError

# Hydra's own keys of an instantiable node: never constructor arguments
HYDRA_KEYS = frozenset({"_target_", "_partial_", "_convert_", "_recursive_", "_args_"})


@dataclass(frozen=True)
class Rule:
    """What a value may be beyond its type, and the one line that explains the key."""

    help: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None
    check: Callable[[Any], bool] | None = None  # for what a range cannot say (`auto` or a count)
    expect: str | None = None  # how to describe what `check` accepts

    def bounds(self) -> str:
        """`≥ 1`, `in (0, 1]`, `> 0`: the range in words ('' when there is none)."""
        low = (">", self.gt) if self.gt is not None else ("≥", self.ge)
        high = ("<", self.lt) if self.lt is not None else ("≤", self.le)
        if low[1] is not None and high[1] is not None:
            left = "(" if low[0] == ">" else "["
            right = ")" if high[0] == "<" else "]"
            return f"in {left}{_show(low[1])}, {_show(high[1])}{right}"
        if low[1] is not None:
            return f"{low[0]} {_show(low[1])}"
        if high[1] is not None:
            return f"{high[0]} {_show(high[1])}"
        return ""

    def admits(self, value: Any) -> bool:
        """Whether a value of the right type is inside the range, choices and check."""
        if self.choices is not None and value not in self.choices:
            return False
        if self.check is not None and not self.check(value):
            return False
        if isinstance(value, bool) or not isinstance(value, int | float):
            return True
        return (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )


def setting(
    help: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Sequence[Any] | None = None,
    check: Callable[[Any], bool] | None = None,
    expect: str | None = None,
) -> Any:
    """A schema field: its range or choices and its help; the YAML keeps the default."""
    rule = Rule(help, ge, gt, le, lt, tuple(choices) if choices is not None else None, check,
                expect)  # fmt: skip
    return field(default=MISSING, metadata={"rule": rule})


def section(schema: type, help: str) -> Any:
    """A nested node without `_target_` (`evaluation.translation`), checked by its own schema."""
    return field(default_factory=schema, metadata={"rule": Rule(help)})


class _Mismatch(Exception):
    """A value that is not of the annotated type."""


def _optional(hint: Any) -> tuple[Any, bool]:
    """`(X, True)` for `X | None` / `Optional[X]`, else `(hint, False)`."""
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(get_args(hint)) == 2:
            return args[0], True
    return hint, False


def convert(value: Any, hint: Any) -> Any:
    """`value` as the annotated type (an int is a number, a number is not an int)."""
    hint, optional = _optional(hint)
    if value is None:
        if optional or hint is Any:
            return None
        raise _Mismatch
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if hint is str:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        raise _Mismatch
    origin, args = get_origin(hint), get_args(hint)
    if origin is list:
        if isinstance(value, Sequence) and not isinstance(value, str):
            return [convert(v, args[0]) for v in value]
        raise _Mismatch
    if origin is dict:
        if isinstance(value, Mapping):
            return {str(k): convert(v, args[1]) for k, v in value.items()}
        raise _Mismatch
    raise TypeError(f"schema type {hint!r} is not supported")  # a bug in a schema


_NOUNS = {int: ("an integer", "integers"), float: ("a number", "numbers"),
          bool: ("true or false", "true or false"), str: ("a string", "strings")}  # fmt: skip


def describe(hint: Any, rule: Rule) -> str:
    """What a key accepts, in words: `an integer ≥ 1`, `a list of numbers > 0 or null`."""
    inner, optional = _optional(hint)
    if rule.expect:
        text = rule.expect
    elif rule.choices is not None:
        text = "one of " + ", ".join(dict.fromkeys(_show(c) for c in rule.choices))
    elif get_origin(inner) in (list, dict):
        element = get_args(inner)[-1]
        noun = _NOUNS.get(_optional(element)[0], ("a value", "values"))[1]
        text = f"a list of {noun}" if get_origin(inner) is list else f"a mapping to {noun}"
        if rule.bounds():
            text += f" {rule.bounds()}"
    else:
        text = _NOUNS.get(inner, ("a value", "values"))[0]
        if rule.bounds():
            text += f" {rule.bounds()}"
    null_listed = rule.choices is not None and None in rule.choices
    return f"{text} or null" if optional and not null_listed else text


def _show(value: Any) -> str:
    """A value as the user typed it on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def _rules(schema: type) -> Iterator[tuple[str, Any, Rule]]:
    hints = get_type_hints(schema)
    for f in dataclasses.fields(schema):
        yield f.name, hints[f.name], f.metadata["rule"]


def check_node(schema: type, node: Any, where: str, strict: bool = False) -> list[str]:
    """Every violation of `schema` in `node`, one line each, named by its full key.

    Interpolated values (`seed: ${seed}`) are skipped: their source key is where a bad value
    was typed and is checked there. `strict` also refuses keys the schema does not know (nodes
    without `_target_`, where no constructor would refuse them).
    """
    problems: list[str] = []
    if not isinstance(node, DictConfig | Mapping):
        return [f"{where}={_show(_plain(node))}: expected a mapping of settings"]
    known = dict((name, (hint, rule)) for name, hint, rule in _rules(schema))
    for key in node:
        full = f"{where}.{key}" if where else str(key)
        if key not in known:
            if strict:
                problems.append(unknown_key(where, str(key), sorted(known)))
            continue
        hint, rule = known[key]
        if isinstance(node, DictConfig) and OmegaConf.is_interpolation(node, str(key)):
            continue
        try:
            value = _plain(node[key])
        except OmegaConfBaseException as err:
            problems.append(f"{full}: cannot be resolved ({str(err).splitlines()[0]})")
            continue
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            problems += check_node(hint, node[key], full, strict=True)
            continue
        problems += _check_value(full, value, hint, rule)
    return problems


def _check_value(key: str, value: Any, hint: Any, rule: Rule) -> list[str]:
    inner = _optional(hint)[0]
    if get_origin(inner) is dict and isinstance(value, Mapping):  # each value named by its key
        element = get_args(inner)[1]
        return [p for k, v in value.items() for p in _check_value(f"{key}.{k}", v, element, rule)]
    expected = f"{key}={_show(value)}: expected {describe(hint, rule)}"
    try:
        converted = convert(value, hint)
    except _Mismatch:
        return [expected]
    if converted is None:
        return []
    items = converted if get_origin(inner) is list and rule.check is None else [converted]
    return [] if all(rule.admits(v) for v in items) else [expected]


def _plain(value: Any) -> Any:
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def unknown_key(where: str, key: str, known: Sequence[str] = (), owner: str = "") -> str:
    """The one line for a key an option does not take (`+strategy.no_such_option=1`)."""
    full = f"{where}.{key}" if where else key
    text = f"{full} is not a setting of {owner or where or 'this config'}"
    if 0 < len(known) <= 20:
        return f"{text}; its settings are {', '.join(known)}"
    return f"{text}; see the configuration reference for the keys of {where or 'the config'}"


PROJECT_PACKAGES = ("supernet.", "search.")  # whose **kwargs go to the base class's __init__


def _keywords(target: Any) -> set[str] | None:
    """The keyword arguments a callable takes; None when it takes any.

    A class of this project that passes `**kwargs` on takes its base classes' keywords too;
    another library's `**kwargs` (W&B settings) may mean anything.
    """
    owners = [c for c in getattr(target, "__mro__", ()) if "__init__" in c.__dict__]
    callables = [(c.__dict__["__init__"], c) for c in owners] if owners else [(target, target)]
    names: set[str] = set()
    for function, owner in callables:
        try:
            params = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):  # a builtin without a signature
            return None
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
        if not str(getattr(owner, "__module__", "")).startswith(PROJECT_PACKAGES):
            return None
    return None


def check_arguments(target: Any, node: Any, where: str) -> list[str]:
    """Keys of an instantiable node that its callable does not take."""
    names = _keywords(target)
    if names is None:
        return []
    known = sorted(n for n in names if n != "self")
    owner = getattr(target, "__name__", "")
    return [unknown_key(where, str(k), known, owner)
            for k in node if k not in names and k not in HYDRA_KEYS]  # fmt: skip


def keys_help(schema: type, prefix: str = "") -> Iterator[tuple[str, str, str]]:
    """`(key, what it accepts, help)` of every key of a schema: the configuration reference."""
    for name, hint, rule in _rules(schema):
        key = f"{prefix}{name}"
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            yield from keys_help(hint, f"{key}.")
        else:
            yield key, describe(hint, rule), rule.help


def _resolve_target(target: Any) -> tuple[Any, str] | None:
    """The callable of a `_target_` and its defining path (re-exports resolve to one name)."""
    try:
        obj = get_object(str(target))
    except Exception:  # an unimportable target: instantiation reports it
        return None
    return obj, f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"


def check_group(node: Any, where: str, options: Mapping[str, type]) -> list[str]:
    """A group's node: the schema of its option (found by `_target_`), keys its callable does
    not take, and the same for every instantiable node inside it (`hardware.meter`)."""
    if not isinstance(node, DictConfig):
        return []
    problems: list[str] = []
    if "_target_" in node and not OmegaConf.is_interpolation(node, "_target_"):
        resolved = _resolve_target(node["_target_"])
        if resolved is None:
            return []
        obj, path = resolved
        problems += check_arguments(obj, node, where)
        if path in options:
            problems += check_node(options[path], node, where)
    for key in node:
        if OmegaConf.is_interpolation(node, str(key)):
            continue
        try:
            child = node[key]
        except OmegaConfBaseException:
            continue  # reported by the schema when it is a checked key
        if isinstance(child, DictConfig):
            problems += check_group(child, f"{where}.{key!s}", options)
    return problems


def check_config(
    cfg: DictConfig, schema: type, groups: Sequence[str], options: Mapping[str, type]
) -> None:
    """Raise one `ConfigError` listing every violation of the top-level schema and the groups."""
    problems = check_node(schema, cfg, "")
    for group in groups:
        problems += check_group(cfg.get(group), group, options)
    if problems:
        raise ConfigError("; ".join(problems))
