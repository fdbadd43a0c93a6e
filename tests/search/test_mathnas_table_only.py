"""A saved block table is solved alone through search.py: no checkpoint, no validation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from search.mathnas.measure import measure_block_table
from search.mathnas.table import BlockTable
from search.strategies.mathnas import solve_block_table
from tests.conftest import ROOT
from tests.search.test_mathnas import toy_problem


@pytest.fixture
def table_file(tmp_path: Path) -> Path:
    path = tmp_path / "table.yaml"
    measure_block_table(toy_problem({"latency_ms": 6.0}, optional=(3, 4))).save(path)
    return path


def test_block_table_alone_is_solved_without_a_checkpoint(make_cfg, table_file: Path) -> None:
    from search.pipeline import run

    cfg = make_cfg("search", "strategy=mathnas", f"strategy.block_table={table_file}",
                   "constraints.latency_ms=6", "hardware=flops")
    solution = run(cfg)
    choices, accuracy, costs = solve_block_table(BlockTable.load(table_file),
                                                 {"latency_ms": 6.0})
    (pick,) = solution["picks"]
    assert pick["choices"] == choices and pick["predicted_accuracy"] == pytest.approx(accuracy)
    assert pick["predicted_costs"]["latency_ms"] <= 6.0
    saved = yaml.safe_load((Path(cfg.paths.output_dir) / "solution.yaml").read_text())
    assert saved["picks"][0]["blocks"] == pick["blocks"] and len(pick["blocks"]) == 5


def test_relative_constraints_are_fractions_of_the_base_network(make_cfg, table_file) -> None:
    from search.pipeline import run

    table = BlockTable.load(table_file)
    cfg = make_cfg("search", "strategy=mathnas", f"strategy.block_table={table_file}",
                   "relative_constraints.latency_ms=0.5", "hardware=flops")
    solution = run(cfg)
    assert solution["constraints"] == {"latency_ms": 0.5 * table.base_value("latency_ms")}


@pytest.mark.slow
def test_cli_prints_the_chosen_blocks_and_predictions(table_file: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "search.py", "strategy=mathnas", f"strategy.block_table={table_file}",
         "constraints.latency_ms=6", "hardware=flops", f"hydra.run.dir={tmp_path / 'run'}",
         "wandb.enabled=false"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "MathNAS pick 1" in proc.stdout and "predicted accuracy" in proc.stdout
    assert np.isfinite(yaml.safe_load((tmp_path / "run" / "solution.yaml").read_text())[
        "picks"][0]["predicted_accuracy"])
