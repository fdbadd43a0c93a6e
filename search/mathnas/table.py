"""The MathNAS block table: what each candidate block of each node costs and how much accuracy it
drops, relative to the node's reference block, so any network can be predicted without training.

A network is one option per node. Its predicted figures (MathNAS, arXiv 2311.04943) are

    cost(N) = cost(Ñ) + Σ_i Δcost(i, J_i)                    (every cost column, and FLOPs)
    Acc(N)  = Acc(Ñ) − Σ_i b^A(i, J_i) · F̄ / F(N)           (with the FLOPs correction)
    Acc(N)  = Acc(Ñ) − Σ_i b^A(i, J_i)                       (without it)

where Ñ is the base net (every node at its reference block), b^A the accuracy drop of a block,
F(N) the network's FLOPs and F̄ the mean FLOPs of the space.

YAML format (``BlockTable.save`` writes it, ``BlockTable.load`` reads and validates it)::

    format: 1
    metric: accuracy        # quality metric of the drops (a loss is stored negated: −loss)
    flops_metric: macs      # the cost metric used as F(N) by the FLOPs correction
    mean_flops: 1.52e+08    # F̄: mean FLOPs of the space (> 0)
    min_flops: 2.1e+06      # optional: the smallest real FLOPs of the space (> 0); with the
                            # FLOPs correction no network is predicted below it (see below)
    base:                   # the base net Ñ: every node at its reference block
      accuracy: 77.1        # Acc(Ñ)
      flops: 2.31e+08       # F(Ñ)
      latency_ms: 14.2      # one entry per cost column
      macs: 2.31e+08
    columns: [latency_ms, macs]   # cost columns; every option has each of them
    nodes:                  # in network order (the order of monotone depth)
      - name: s1_b3
        reference: 8        # index of the reference option; all its values are 0
        depth_label: s1_depth   # only for optional nodes: the depth decision ...
        absent: 9               # ... and the index of the "absent" option
        options:            # index j = candidate j of the space's node; absent last
          - {name: kernel=3/expand=3, acc_drop: 1.2, flops: -3.1e+06,
             latency_ms: -0.21, macs: -3.1e+06}
          - ...
    meta: {}                # free-form provenance (space, context, validations)

Every value of an option is a *change* relative to the node's reference block (``acc_drop`` =
Acc(ref) − Acc(option), so positive means worse). Optional nodes of one ``depth_label`` are
monotone: once one is absent, all later ones are.

Additive FLOPs can fall to zero or below for small networks when one node scales every layer
(an input resolution: each layer's change is measured at the context's resolution). With
``min_flops`` the FLOPs correction uses max(F(N), min_flops) and the solver only picks networks
predicted at or above it, so the fractional program stays well defined; without it such a
table cannot be solved with the correction.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from supernet.errors import NASError
from supernet.space import SearchSpace

FORMAT_VERSION = 1
_ZERO_TOL = 1e-9


class BlockTableError(NASError, ValueError):
    """A block table that is malformed or does not fit the space it is used with."""


@dataclass(frozen=True)
class BlockOption:
    """One candidate block of a node: its accuracy drop and cost changes vs the reference."""

    name: str
    acc_drop: float
    flops: float
    costs: Mapping[str, float] = field(default_factory=dict)

    def value(self, column: str) -> float:
        """`acc_drop`, `flops` or a cost column."""
        if column == "acc_drop":
            return self.acc_drop
        if column == "flops":
            return self.flops
        return float(self.costs[column])


@dataclass(frozen=True)
class BlockNode:
    """A node (layer) of the table: its options, its reference, and its depth if optional."""

    name: str
    options: tuple[BlockOption, ...]
    reference: int
    depth_label: str | None = None
    absent: int | None = None

    @property
    def optional(self) -> bool:
        return self.depth_label is not None


@dataclass
class BlockTable:
    """Base constants plus, per node, the options as deltas vs the node's reference block."""

    base_accuracy: float
    base_flops: float
    base_costs: dict[str, float]
    mean_flops: float
    nodes: tuple[BlockNode, ...]
    metric: str = "accuracy"
    flops_metric: str = "macs"
    meta: dict[str, Any] = field(default_factory=dict)
    min_flops: float | None = None

    def __post_init__(self) -> None:
        self.nodes = tuple(self.nodes)
        self.validate()

    # --- facts --------------------------------------------------------------------------
    @property
    def columns(self) -> tuple[str, ...]:
        """The cost columns (constraints can be put on these and on `flops`)."""
        return tuple(sorted(self.base_costs))

    @property
    def num_options(self) -> list[int]:
        return [len(n.options) for n in self.nodes]

    def vector(self, column: str) -> np.ndarray:
        """One column over all options, node after node (the MILP's variable order)."""
        self._check_column(column)
        return np.array([o.value(column) for n in self.nodes for o in n.options], dtype=float)

    def base_value(self, column: str) -> float:
        """The base net's value of a cost column or of `flops`."""
        self._check_column(column)
        return self.base_flops if column == "flops" else float(self.base_costs[column])

    def _check_column(self, column: str) -> None:
        if column not in ("acc_drop", "flops") and column not in self.base_costs:
            raise BlockTableError(
                f"the block table has no cost column {column!r}; columns: "
                f"{['flops', *self.columns]}"
            )

    # --- prediction -------------------------------------------------------------------------
    def _picked(self, choices: Sequence[int]) -> list[BlockOption]:
        if len(choices) != len(self.nodes):
            raise BlockTableError(f"expected {len(self.nodes)} node choices, got {len(choices)}")
        picked = []
        for node, j in zip(self.nodes, choices, strict=True):
            if not 0 <= int(j) < len(node.options):
                raise BlockTableError(f"node {node.name!r} has no option {j}")
            picked.append(node.options[int(j)])
        return picked

    def predict_cost(self, choices: Sequence[int], name: str) -> float:
        """cost(N) = cost(Ñ) + Σ Δcost; `name` is a cost column or `flops`."""
        return self.base_value(name) + sum(o.value(name) for o in self._picked(choices))

    def predict_accuracy(self, choices: Sequence[int], flops_correction: bool = True) -> float:
        """Acc(N) = Acc(Ñ) − Σ b^A · F̄ / F(N) (or without the F̄ / F(N) factor)."""
        drop = sum(o.acc_drop for o in self._picked(choices))
        if not flops_correction:
            return self.base_accuracy - drop
        flops = self.predict_cost(choices, "flops")
        if self.min_flops is not None:
            flops = max(flops, self.min_flops)
        if flops <= 0:
            raise BlockTableError(f"predicted FLOPs {flops} of {list(choices)} are not positive")
        return self.base_accuracy - drop * self.mean_flops / flops

    # --- validation ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Check the invariants the solver relies on; a `BlockTableError` says what is wrong."""
        _finite("base accuracy", self.base_accuracy)
        _finite("base flops", self.base_flops)
        _finite("mean_flops", self.mean_flops)
        if self.mean_flops <= 0:
            raise BlockTableError(f"mean_flops must be positive, got {self.mean_flops}")
        if self.min_flops is not None:
            _finite("min_flops", self.min_flops)
            if self.min_flops <= 0:
                raise BlockTableError(f"min_flops must be positive, got {self.min_flops}")
        for name, value in self.base_costs.items():
            _finite(f"base {name}", value)
        if not self.nodes:
            raise BlockTableError("the block table has no nodes")
        columns = set(self.base_costs)
        seen: set[str] = set()
        for node in self.nodes:
            where = f"node {node.name!r}"
            if node.name in seen:
                raise BlockTableError(f"{where} appears twice")
            seen.add(node.name)
            if not node.options:
                raise BlockTableError(f"{where} has no options")
            if not 0 <= node.reference < len(node.options):
                raise BlockTableError(f"{where}: reference {node.reference} is not an option index")
            if (node.depth_label is None) != (node.absent is None):
                raise BlockTableError(f"{where}: depth_label and absent must be given together")
            if node.absent is not None and not 0 <= node.absent < len(node.options):
                raise BlockTableError(f"{where}: absent {node.absent} is not an option index")
            if node.absent is not None and node.absent == node.reference:
                raise BlockTableError(f"{where}: the absent option cannot be the reference")
            for j, opt in enumerate(node.options):
                label = f"{where} option {j} ({opt.name!r})"
                if set(opt.costs) != columns:
                    missing = sorted(columns - set(opt.costs))
                    extra = sorted(set(opt.costs) - columns)
                    raise BlockTableError(
                        f"inconsistent columns: {label} is missing {missing} and has extra "
                        f"{extra}; every option needs exactly the columns {sorted(columns)}"
                    )
                for col in ("acc_drop", "flops", *opt.costs):
                    _finite(f"{label} {col}", opt.value(col))
            ref = node.options[node.reference]
            nonzero = [
                c for c in ("acc_drop", "flops", *ref.costs) if abs(ref.value(c)) > _ZERO_TOL
            ]
            if nonzero:
                raise BlockTableError(
                    f"{where}: the reference option must have 0 change, but {nonzero} are not 0"
                )

    def for_space(self, space: SearchSpace) -> BlockTable:
        """This table with its nodes in `space`'s order (matched by name), checked against it.

        Node order carries no meaning in the table, so a table written with the same nodes in
        another order (by hand, or by a version that listed them differently) still solves."""
        names = [n.name for n in space.nodes]
        table = self
        if sorted(n.name for n in self.nodes) == sorted(names) and len(set(names)) == len(names):
            by_name = {n.name: n for n in self.nodes}
            table = dataclasses.replace(
                self, nodes=tuple(by_name[name] for name in names), meta=dict(self.meta)
            )
        table.check_space(space)
        return table

    def check_space(self, space: SearchSpace) -> None:
        """Fail clearly when the table was measured on another space than `space`."""
        if len(self.nodes) != len(space.nodes):
            raise BlockTableError(
                f"the block table has {len(self.nodes)} nodes, space {space.name!r} has "
                f"{len(space.nodes)}"
            )
        for tn, sn in zip(self.nodes, space.nodes, strict=True):
            if tn.name != sn.name or len(tn.options) != sn.num_options:
                raise BlockTableError(
                    f"block table node {tn.name!r} ({len(tn.options)} options) does not match "
                    f"space node {sn.name!r} ({sn.num_options} options)"
                )
            if tn.absent != sn.absent_index or tn.depth_label != sn.depth_label:
                raise BlockTableError(
                    f"block table node {tn.name!r} differs in depth from the space"
                )

    def clipped_drops(self) -> BlockTable:
        """A copy whose negative accuracy drops are zero.

        A block measured better than its node's reference (the largest block) is usually
        measurement noise; with the FLOPs correction such drops are scaled up by F̄ / F(N) on
        small networks, so the program favours the smallest networks it can find."""
        nodes = tuple(
            dataclasses.replace(
                n,
                options=tuple(
                    dataclasses.replace(o, acc_drop=max(o.acc_drop, 0.0)) for o in n.options
                ),
            )
            for n in self.nodes
        )
        return dataclasses.replace(self, nodes=nodes, meta=dict(self.meta))

    # --- YAML -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The YAML document (see the module docstring) as plain Python data."""
        nodes = []
        for node in self.nodes:
            entry: dict[str, Any] = {"name": node.name, "reference": node.reference}
            if node.optional:
                entry["depth_label"] = node.depth_label
                entry["absent"] = node.absent
            entry["options"] = [
                {
                    "name": o.name,
                    "acc_drop": float(o.acc_drop),
                    "flops": float(o.flops),
                    **{c: float(o.costs[c]) for c in self.columns},
                }
                for o in node.options
            ]
            nodes.append(entry)
        return {
            "format": FORMAT_VERSION,
            "metric": self.metric,
            "flops_metric": self.flops_metric,
            "mean_flops": float(self.mean_flops),
            **({} if self.min_flops is None else {"min_flops": float(self.min_flops)}),
            "base": {
                "accuracy": float(self.base_accuracy),
                "flops": float(self.base_flops),
                **{c: float(self.base_costs[c]) for c in self.columns},
            },
            "columns": list(self.columns),
            "nodes": nodes,
            "meta": _plain(self.meta),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BlockTable:
        """Parse the YAML document; every problem becomes a `BlockTableError`."""
        if not isinstance(data, Mapping):
            raise BlockTableError("a block table must be a mapping with base, mean_flops, nodes")
        if data.get("format", FORMAT_VERSION) != FORMAT_VERSION:
            raise BlockTableError(f"unsupported block table format {data.get('format')!r}")
        for key in ("base", "mean_flops", "nodes"):
            if key not in data:
                raise BlockTableError(f"the block table is missing {key!r}")
        base = dict(data["base"] or {})
        for key in ("accuracy", "flops"):
            if key not in base:
                raise BlockTableError(f"the block table's base is missing {key!r}")
        columns = list(data.get("columns", [k for k in base if k not in ("accuracy", "flops")]))
        for col in columns:
            if col not in base:
                raise BlockTableError(f"the block table's base is missing column {col!r}")
        if not isinstance(data["nodes"], Sequence) or not data["nodes"]:
            raise BlockTableError("the block table has no nodes")
        nodes = [_parse_node(n, k, columns) for k, n in enumerate(data["nodes"])]
        return cls(
            base_accuracy=_num("base accuracy", base["accuracy"]),
            base_flops=_num("base flops", base["flops"]),
            base_costs={c: _num(f"base {c}", base[c]) for c in columns},
            mean_flops=_num("mean_flops", data["mean_flops"]),
            nodes=tuple(nodes),
            metric=str(data.get("metric", "accuracy")),
            flops_metric=str(data.get("flops_metric", "macs")),
            meta=dict(data.get("meta") or {}),
            min_flops=None
            if data.get("min_flops") is None
            else _num("min_flops", data["min_flops"]),
        )

    def save(self, path: str | Path) -> None:
        """Write the table as YAML (parent directories are created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, width=100))

    @classmethod
    def load(cls, path: str | Path) -> BlockTable:
        """Read and validate a YAML block table."""
        try:
            data = yaml.safe_load(Path(path).read_text())
        except OSError as err:
            raise BlockTableError(f"cannot read block table {str(path)!r}: {err}") from None
        except yaml.YAMLError as err:
            raise BlockTableError(f"block table {str(path)!r} is not valid YAML: {err}") from None
        try:
            return cls.from_dict(data)
        except BlockTableError as err:
            raise BlockTableError(f"{path}: {err}") from None


def _parse_node(raw: Any, k: int, columns: Sequence[str]) -> BlockNode:
    if not isinstance(raw, Mapping) or "name" not in raw:
        raise BlockTableError(f"node #{k} must be a mapping with a name and options")
    name = str(raw["name"])
    options_raw = raw.get("options") or []
    if not options_raw:
        raise BlockTableError(f"node {name!r} has no options")
    options = []
    for j, o in enumerate(options_raw):
        label = f"node {name!r} option {j}"
        if not isinstance(o, Mapping):
            raise BlockTableError(f"{label} must be a mapping")
        for col in ("acc_drop", "flops", *columns):
            if col not in o:
                raise BlockTableError(f"{label} ({o.get('name', '?')!r}) is missing column {col!r}")
        extra = sorted(set(o) - {"name", "acc_drop", "flops", *columns})
        if extra:
            raise BlockTableError(
                f"inconsistent columns: {label} has {extra}, which are not in the table's "
                f"columns {list(columns)}"
            )
        options.append(
            BlockOption(
                name=str(o.get("name", j)),
                acc_drop=_num(f"{label} acc_drop", o["acc_drop"]),
                flops=_num(f"{label} flops", o["flops"]),
                costs={c: _num(f"{label} {c}", o[c]) for c in columns},
            )
        )
    if "reference" not in raw:
        raise BlockTableError(f"node {name!r} does not say which option is its reference")
    absent = raw.get("absent")
    return BlockNode(
        name=name,
        options=tuple(options),
        reference=int(raw["reference"]),
        depth_label=None if raw.get("depth_label") is None else str(raw["depth_label"]),
        absent=None if absent is None else int(absent),
    )


def _num(what: str, value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise BlockTableError(f"{what} must be a number, got {value!r}") from None
    _finite(what, out)
    return out


def _finite(what: str, value: float) -> None:
    if not math.isfinite(float(value)):
        raise BlockTableError(f"{what} must be finite, got {value}")


def _plain(value: Any) -> Any:
    """Numpy scalars and tuples → YAML-safe Python data."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
