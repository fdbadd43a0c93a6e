"""Training recipes: which subnets a training step trains, and what teaches them.

A recipe only reads the `SearchSpace`, so the same recipes train every supernet. Subnets are
drawn from a generator seeded by (seed, global step), so every distributed rank trains the
same subnets in a step without any communication.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from supernet.errors import ConfigError
from supernet.space import Arch, SearchSpace


@dataclass(frozen=True)
class StepPlan:
    """The subnets of one step. `inplace_distill`: the first subnet teaches the others."""

    archs: tuple[Arch, ...]
    inplace_distill: bool = False
    external_teacher: bool = False


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The generator of a step: identical on every rank, independent across steps."""
    return np.random.default_rng([seed, step])


class Recipe:
    """Base of the recipes: `plan(space, epoch, step)` and a few facts for logs."""

    name: str = "recipe"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def plan(self, space: SearchSpace, epoch: int, step: int) -> StepPlan:
        raise NotImplementedError

    def phase(self, epoch: int) -> str:
        return self.name

    def phase_index(self, epoch: int) -> int:
        return 0

    def wants_teacher(self, epoch: int) -> bool:
        """True when a frozen copy of the full network should teach from this epoch on."""
        return False

    def sorts_channels_at(self, epoch: int) -> bool:
        """True when channels should be re-sorted by importance before this epoch."""
        return False

    def expand_stage(self, epoch: int) -> int:
        """How many earlier phases sorted channels: the sort at `epoch` keeps that many
        already-trained narrower widths in front (OFA sorts per expand stage)."""
        return 0


class RandomSubnet(Recipe):
    """One uniformly random subnet per step (HAT)."""

    name = "random"

    def plan(self, space: SearchSpace, epoch: int, step: int) -> StepPlan:
        return StepPlan((space.sample(step_rng(self.seed, step)),))


class SandwichRule(Recipe):
    """Largest + smallest + `num_random` random subnets per step; the largest teaches in place.

    Args:
        num_random: random subnets per step besides the two extremes.
        inplace_distill: train the others on the largest subnet's soft predictions.
        seed: seed of the per-step sampling.
    """

    name = "sandwich"

    def __init__(self, num_random: int = 2, inplace_distill: bool = True, seed: int = 0) -> None:
        super().__init__(seed)
        if num_random < 0:
            raise ConfigError(f"recipe.num_random must be ≥ 0, got {num_random}")
        self.num_random = num_random
        self.inplace_distill = inplace_distill

    def plan(self, space: SearchSpace, epoch: int, step: int) -> StepPlan:
        rng = step_rng(self.seed, step)
        randoms = tuple(space.sample(rng) for _ in range(self.num_random))
        return StepPlan((space.largest(), space.smallest(), *randoms), self.inplace_distill)


@dataclass(frozen=True)
class Phase:
    """A phase of progressive shrinking.

    `elastic` maps a decision kind to the options sampled in this phase; a kind matches a
    label equal to it or ending in `_<kind>` (`kernel` matches `s2_b1_kernel`). The options
    are a list of values, `all`, or a number n (the n largest options of each decision), so
    one schedule fits spaces with other choice lists. Decisions of no listed kind stay at
    their largest option. `sort_channels` re-sorts channels by
    importance when the phase starts (OFA does so before opening the expand ratio).
    """

    name: str
    epochs: int
    elastic: Mapping[str, Sequence[Any] | str | int] = field(default_factory=dict)
    subnets_per_step: int = 1
    sort_channels: bool = False


class ProgressiveShrinking(Recipe):
    """Once-for-All: train the full net, then open kernel, depth and expand in phases.

    After the first phase a frozen copy of the full network teaches every later subnet
    (knowledge distillation, OFA's CE + kd_ratio × soft CE).

    Args:
        phases: the phases in order (dicts with name, epochs, elastic, subnets_per_step).
        seed: seed of the per-step sampling.
    """

    name = "progressive"

    def __init__(self, phases: Sequence[Mapping[str, Any] | Phase], seed: int = 0) -> None:
        super().__init__(seed)
        self.phases = [p if isinstance(p, Phase) else Phase(**p) for p in phases]
        if not self.phases:
            raise ConfigError("recipe.phases is empty; give at least the full-network phase")
        if any(p.epochs <= 0 for p in self.phases):
            raise ConfigError("every progressive-shrinking phase needs epochs ≥ 1")

    @property
    def total_epochs(self) -> int:
        return sum(p.epochs for p in self.phases)

    def phase_of(self, epoch: int) -> tuple[int, Phase]:
        """The phase an epoch belongs to (the last one continues after the schedule ends)."""
        end = 0
        for i, phase in enumerate(self.phases):
            end += phase.epochs
            if epoch < end:
                return i, phase
        return len(self.phases) - 1, self.phases[-1]

    def phase(self, epoch: int) -> str:
        return self.phase_of(epoch)[1].name

    def phase_index(self, epoch: int) -> int:
        return self.phase_of(epoch)[0]

    def wants_teacher(self, epoch: int) -> bool:
        return self.phase_of(epoch)[0] > 0

    def sorts_channels_at(self, epoch: int) -> bool:
        index, phase = self.phase_of(epoch)
        return phase.sort_channels and epoch == sum(p.epochs for p in self.phases[:index])

    def expand_stage(self, epoch: int) -> int:
        index, _ = self.phase_of(epoch)
        return sum(1 for p in self.phases[:index] if p.sort_channels)

    def plan(self, space: SearchSpace, epoch: int, step: int) -> StepPlan:
        _, phase = self.phase_of(epoch)
        rng = step_rng(self.seed, step)
        allowed = _allowed_options(space, phase.elastic)
        archs = []
        for _ in range(phase.subnets_per_step):
            values = {label: opts[rng.integers(len(opts))] for label, opts in allowed.items()}
            archs.append(space.arch(values))
        return StepPlan(tuple(archs), external_teacher=self.wants_teacher(epoch))


def _allowed_options(
    space: SearchSpace, elastic: Mapping[str, Sequence[Any] | str | int]
) -> dict[str, list[Any]]:
    allowed: dict[str, list[Any]] = {}
    for d in space.decisions:
        kind = next((k for k in elastic if d.label == k or d.label.endswith(f"_{k}")), None)
        if kind is None:
            allowed[d.label] = [d.options[-1]]
            continue
        spec = elastic[kind]
        if spec == "all":
            opts = list(d.options)
        elif isinstance(spec, int) and not isinstance(spec, bool):
            if spec < 1:
                raise ConfigError(f"progressive phase asks for {spec} options of {kind!r}")
            opts = list(d.options[-spec:])  # options are listed small to large
        elif isinstance(spec, Sequence) and not isinstance(spec, str):
            opts = [o for o in d.options if o in list(spec)]
        else:
            raise ConfigError(
                f"progressive phase option {spec!r} for {kind!r}: give a list, all, or a count"
            )
        if not opts:
            raise ConfigError(
                f"progressive phase option list for {kind!r} ({spec}) shares "
                f"nothing with {d.label}'s options {list(d.options)}"
            )
        allowed[d.label] = opts
    return allowed
