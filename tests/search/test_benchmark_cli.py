"""`python search.py space=...` on a small table: a result, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.search.synthetic_tables import sss_table, write_sss_exports


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nas_data")
    write_sss_exports(root, sss_table())
    return root


def _search(data_dir: Path, out: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "search.py", "space=nats_sss", "wandb.enabled=false",
           f"hydra.run.dir={out}", *overrides]  # fmt: skip
    env = {**os.environ, "NAS_DATA": str(data_dir), "WANDB_MODE": "disabled"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_search_on_a_table_finds_its_feasible_optimum(data_dir: Path, tmp_path: Path) -> None:
    done = _search(data_dir, tmp_path / "run", "strategy=layernas", "budget=60",
                   "relative_constraints.macs=0.5")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    table = sss_table()
    table = table[table.dataset == "cifar10"]
    feasible = table[table.flops_M <= 0.5 * table.flops_M.max()]
    best = summary["best"]["macs"]  # the best network under the MACs constraint
    assert best["feasible"]
    assert best["metrics"]["accuracy"] == pytest.approx(feasible.val_acc.max())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("strategy=layernas", "strategy.bucket_range=foo"), "strategy: bucket_range must be"),
        (("+strategy.no_such_option=1",), "strategy.no_such_option is not a setting"),
        (("space.dataset=mnist",), "mnist"),
        (("space.path=/nowhere",), "no nats_sss data at /nowhere"),
        (("constraints.macs=1",), "cannot be met"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    data_dir: Path, tmp_path: Path, overrides: tuple[str, ...], message: str
) -> None:
    done = _search(data_dir, tmp_path / "run", "budget=20", *overrides)
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
