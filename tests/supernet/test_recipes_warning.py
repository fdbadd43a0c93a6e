"""A phased recipe that `trainer.max_epochs` cuts short says so before training."""

from __future__ import annotations

import logging

from hydra.utils import instantiate

from supernet.pipeline import warn_unfinished_phases


def test_progressive_phases_cut_short_are_named(make_cfg, caplog) -> None:
    cfg = make_cfg("train", "recipe=progressive")  # data=glyphs: 5 epochs, the phases take 15
    recipe = instantiate(cfg.recipe)
    with caplog.at_level(logging.WARNING, logger="supernet.pipeline"):
        warn_unfinished_phases(recipe, cfg.trainer.max_epochs)
    assert f"phases take {recipe.total_epochs} epochs but trainer.max_epochs=5" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="supernet.pipeline"):
        warn_unfinished_phases(recipe, recipe.total_epochs)
        warn_unfinished_phases(instantiate(make_cfg("train").recipe), 1)  # sandwich: no phases
    assert caplog.text == ""
