"""Recipes plan the same subnets for the same step on every rank, and follow their phases."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from supernet.calibration import recalibrate_bn
from supernet.errors import ConfigError
from supernet.mobilenetv3.space import mobilenetv3_space
from supernet.recipes import ProgressiveShrinking, RandomSubnet, SandwichRule

SPACE = mobilenetv3_space(kernel_sizes=(3, 5, 7), expand_ratios=(3, 4, 6), depths=(2, 3, 4),
                          resolutions=(16, 20, 24))
PHASES = [
    {"name": "full", "epochs": 2},
    {"name": "kernel", "epochs": 1, "elastic": {"kernel": [3, 5, 7]}},
    {"name": "depth", "epochs": 1, "subnets_per_step": 2,
     "elastic": {"kernel": [3, 5, 7], "depth": [3, 4]}},
    {"name": "expand", "epochs": 2, "subnets_per_step": 4, "sort_channels": True,
     "elastic": {"kernel": [3, 5, 7], "depth": [2, 3, 4], "expand": [4, 6]}},
]


def _values(archs, suffix):
    """Values of the active decisions ending in `suffix` (switched-off blocks are canonical)."""
    return {v for a in archs for k, v in a.items() if k.endswith(suffix) and SPACE.is_active(a, k)}


def test_sandwich_plans_extremes_and_seeded_randoms() -> None:
    recipe = SandwichRule(num_random=2, seed=5)
    plan = recipe.plan(SPACE, epoch=0, step=7)
    assert plan.archs[0] == SPACE.largest() and plan.archs[1] == SPACE.smallest()
    assert len(plan.archs) == 4 and plan.inplace_distill
    again = SandwichRule(num_random=2, seed=5).plan(SPACE, epoch=3, step=7)
    assert again.archs == plan.archs  # what another rank computes for the same step
    assert SandwichRule(num_random=2, seed=5).plan(SPACE, 0, 8).archs[2:] != plan.archs[2:]
    with pytest.raises(ConfigError):
        SandwichRule(num_random=-1)


def test_random_recipe_is_one_seeded_subnet() -> None:
    plan = RandomSubnet(seed=1).plan(SPACE, 0, 3)
    assert len(plan.archs) == 1 and plan.archs == RandomSubnet(seed=1).plan(SPACE, 9, 3).archs


def test_progressive_phases_open_dimensions_in_order() -> None:
    recipe = ProgressiveShrinking(PHASES, seed=0)
    full = [a for s in range(20) for a in recipe.plan(SPACE, 0, s).archs]
    assert set(full) == {SPACE.largest()} and not recipe.wants_teacher(1)
    kernel = [a for s in range(50) for a in recipe.plan(SPACE, 2, s).archs]
    assert _values(kernel, "_kernel") == {3, 5, 7}
    assert _values(kernel, "_depth") == {4} and _values(kernel, "_expand") == {6}
    assert recipe.wants_teacher(2) and recipe.plan(SPACE, 2, 0).external_teacher
    depth = [a for s in range(50) for a in recipe.plan(SPACE, 3, s).archs]
    assert _values(depth, "_depth") == {3, 4} and len(recipe.plan(SPACE, 3, 0).archs) == 2
    expand = [a for s in range(50) for a in recipe.plan(SPACE, 4, s).archs]
    assert _values(expand, "_expand") == {4, 6} and _values(expand, "_depth") == {2, 3, 4}
    assert [recipe.sorts_channels_at(e) for e in range(7)] == [False] * 4 + [True] + [False] * 2
    assert recipe.phase(100) == "expand"  # the last phase continues past the schedule


def test_progressive_counts_and_all_follow_the_space() -> None:
    phases = [{"name": "depth", "epochs": 1, "elastic": {"kernel": "all", "depth": 2}}]
    tiny = mobilenetv3_space(kernel_sizes=(3, 5), expand_ratios=(3, 6), depths=(1, 2),
                             resolutions=(16, 24))  # fmt: skip
    for space, depths in ((SPACE, {3, 4}), (tiny, {1, 2})):
        archs = [a for s in range(60) for a in ProgressiveShrinking(phases).plan(space, 0, s).archs]
        kernels = {v for a in archs for k, v in a.items() if k.endswith("_kernel")}
        assert kernels == {o for d in space.decisions if d.label.endswith("_kernel")
                           for o in d.options}  # fmt: skip
        assert {v for a in archs for k, v in a.items()
                if k.endswith("_depth")} == depths  # fmt: skip
    bad = ProgressiveShrinking([{"name": "k", "epochs": 1, "elastic": {"kernel": "most"}}])
    with pytest.raises(ConfigError, match="a list, all, or a count"):
        bad.plan(SPACE, 0, 0)


def test_progressive_rejects_options_outside_the_space() -> None:
    recipe = ProgressiveShrinking([{"name": "k", "epochs": 1, "elastic": {"kernel": [9]}}])
    with pytest.raises(ConfigError, match="kernel"):
        recipe.plan(SPACE, 0, 0)


def test_bn_recalibration_gives_exact_statistics() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    batches = [(torch.randn(8, 1, 10, 10) * 3 + 1, torch.zeros(8)) for _ in range(3)]
    net.eval()
    seen = recalibrate_bn(net, batches)
    assert seen == 24 and not net.training
    with torch.no_grad():
        features = torch.cat([net[0](x) for x, _ in batches])
    expected = features.mean(dim=(0, 2, 3))
    assert torch.allclose(net[1].running_mean, expected, atol=1e-5)
    assert net[1].momentum == 0.1  # restored


def test_each_expand_phase_sorts_at_its_own_stage() -> None:
    """OFA sorts per expand stage: the second expand phase keeps the first one's widths."""
    from omegaconf import OmegaConf

    from tests.conftest import CONF_DIR

    phases = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "recipe" / "progressive.yaml"))
    recipe = ProgressiveShrinking(phases["phases"], seed=0)  # type: ignore[index]
    starts = [e for e in range(recipe.total_epochs) if recipe.sorts_channels_at(e)]
    assert [recipe.expand_stage(e) for e in starts] == [0, 1]
    # the input resolution is elastic from the first phase on
    first = [a for s in range(30) for a in recipe.plan(SPACE, 0, s).archs]
    assert {a["resolution"] for a in first} == {16, 20, 24}


def test_module_passes_the_expand_stage_to_the_supernet(monkeypatch) -> None:
    from supernet.mobilenetv3 import MobileNetV3Supernet
    from supernet.module import SupernetModule

    phases = [{"name": "full", "epochs": 1},
              {"name": "e46", "epochs": 1, "sort_channels": True, "elastic": {"expand": 2}},
              {"name": "e346", "epochs": 1, "sort_channels": True, "elastic": {"expand": "all"}}]
    net = MobileNetV3Supernet(num_classes=4, in_channels=1, resolutions=(16,), stem_stride=1)
    module = SupernetModule(net, ProgressiveShrinking(phases), optimizer=torch.optim.SGD)
    stages: list[int] = []
    monkeypatch.setattr(net, "sort_channels", stages.append)
    monkeypatch.setattr(module, "log", lambda *a, **k: None)
    monkeypatch.setattr(module, "_optimizers", lambda: [])
    monkeypatch.setattr(module, "_make_teacher", lambda *a: None)
    monkeypatch.setattr(module, "_sync_teacher", lambda: None)
    for epoch in range(3):
        monkeypatch.setattr(SupernetModule, "current_epoch", property(lambda self, e=epoch: e))
        module.on_train_epoch_start()
    assert stages == [0, 1]
