"""`space=table` through the search pipeline, and regret in every tabular benchmark's summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra.errors import InstantiationException

from search.benchmarks import BenchmarkError
from search.pipeline import run
from tests.conftest import ROOT
from tests.search.column_tables import decisions, drop_rows, layer_table
from tests.search.synthetic_tables import sss_table

TABLE = ["space=table", "space.decisions=[l1,l2,l3,l4]", "space.quality=acc",
         "wandb.enabled=false"]  # fmt: skip


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    path = tmp_path / "sweep.csv"
    layer_table(interaction=0.2).to_csv(path, index=False)
    return path


def test_search_on_a_table_reports_regret(make_cfg, csv: Path, capsys) -> None:
    cfg = make_cfg("search", *TABLE, f"space.path={csv}", "space.report_quality=test_acc",
                   "+space.costs={macs: flops, latency_ms: lat}", "strategy=random", "budget=20",
                   "relative_constraints.macs=0.5", "constraints.latency_ms=60")  # fmt: skip
    run(cfg)
    summary = json.loads((Path(cfg.paths.output_dir) / "summary.json").read_text())
    frame = layer_table(interaction=0.2)
    bound = 0.5 * frame.flops.max()
    ok = frame.flops <= bound
    regret = summary["regret"]
    assert set(regret) == {"macs", "latency_ms", "all"}
    assert regret["macs"]["table_best"]["accuracy"] == pytest.approx(frame.acc[ok].max())
    assert regret["all"]["best_test_accuracy"] == pytest.approx(
        frame.test_acc[ok & (frame.lat <= 60)].max()
    )
    found = summary["best"]["macs"]["metrics"]["accuracy"]
    assert regret["macs"]["regret"] == pytest.approx(frame.acc[ok].max() - found)
    assert "Regret against the table" in capsys.readouterr().out


def test_nats_size_summary_has_regret(make_cfg, tmp_path: Path) -> None:
    path = tmp_path / "sss.csv"
    sss_table().to_csv(path, index=False)
    cfg = make_cfg("search", "space=nats_sss", f"space.path={path}", "strategy=random",
                   "budget=15", "relative_constraints.macs=0.5", "wandb.enabled=false")
    run(cfg)
    regret = json.loads((Path(cfg.paths.output_dir) / "summary.json").read_text())["regret"]
    rows = sss_table()[lambda f: f.dataset == "cifar10"]
    ok = rows.flops_M * 1e6 <= 0.5 * rows.flops_M.max() * 1e6
    assert regret["macs"]["table_best"]["accuracy"] == pytest.approx(rows.val_acc[ok].max())
    assert regret["macs"]["regret"] >= 0 and regret["macs"]["report_regret"] >= 0


def test_a_minimised_quality_gets_a_reference_and_searches(make_cfg, tmp_path: Path) -> None:
    path = tmp_path / "err.csv"
    layer_table().assign(err=lambda f: 100 - f.acc).to_csv(path, index=False)
    cfg = make_cfg("search", *TABLE, f"space.path={path}", "space.quality=err",
                   "space.quality_sense=min", "+space.costs={macs: flops}", "strategy=layernas",
                   "budget=40", "relative_constraints.macs=0.5")  # fmt: skip
    result = run(cfg)
    assert result.objectives == ("loss", "macs")
    summary = json.loads((Path(cfg.paths.output_dir) / "summary.json").read_text())
    assert summary["regret"]["macs"]["regret"] == pytest.approx(0.0, abs=1e-9)


def test_an_incomplete_table_in_the_pipeline(make_cfg, tmp_path: Path) -> None:
    path = tmp_path / "holes.csv"
    drop_rows(layer_table(), 0.3).to_csv(path, index=False)
    args = [*TABLE, f"space.path={path}", "+space.costs={macs: flops}", "budget=20",
            "relative_constraints.macs=0.5"]  # fmt: skip
    result = run(make_cfg("search", *args, "strategy=evolution"))
    assert len(result.rows) == 20
    with pytest.raises(BenchmarkError, match="lacks 24 of the 81 combinations"):
        run(make_cfg("search", *args, "strategy=mathnas"))


def test_a_cost_whose_cheapest_row_is_not_the_smallest_network(make_cfg, tmp_path) -> None:
    path = tmp_path / "reversed.csv"
    frame = layer_table().assign(lat=lambda f: f.lat.max() - f.lat + 1)  # wide = fast
    frame.to_csv(path, index=False)
    bound = float(frame.lat.min() + 1)  # met by wide rows only, not by the smallest network
    result = run(make_cfg("search", *TABLE, f"space.path={path}", "+space.costs={macs: flops, "
                          "latency_ms: lat}", "strategy=random", "budget=30",
                          f"constraints.latency_ms={bound}"))  # fmt: skip
    assert all(r.metrics["latency_ms"] <= bound for r in result.rows if r.feasible)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("+space.costs={macs: flops}", "constraints.macs=1"),
         "constraint macs ≤ 1 cannot be met: .* has macs = 256"),
        (("+space.costs={latency_ms: lat}",), r"objectives \['macs'\] are not figures"),
        (("+space.costs={macs: flops}", "space.decisions=[l1,depth]"),
         r"no column depth \(decision\); its columns are"),
    ],
)
def test_bad_table_settings(make_cfg, csv: Path, overrides: tuple[str, ...], message: str) -> None:
    cfg = make_cfg("search", *TABLE, f"space.path={csv}", "budget=10", *overrides)
    with pytest.raises(BenchmarkError, match=message):
        try:
            run(cfg)
        except InstantiationException as err:  # the table refused: what the CLI prints
            raise err.__cause__ from None  # type: ignore[misc]


# --- through search.py ------------------------------------------------------------------------
def _search(out: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "search.py", "wandb.enabled=false", f"hydra.run.dir={out}",
           *overrides]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("costs", ["+space.costs={macs: flops}", "space.costs={macs: flops}"])
def test_the_documented_example_runs(tmp_path: Path, costs: str) -> None:
    """7 decision columns of 4 options (16,384 rows), LayerNAS at half the FLOPs, budget 200."""
    path = tmp_path / "my.csv"
    layer_table(layers=7, options=(16, 24, 32, 48), interaction=0.1).to_csv(path, index=False)
    done = _search(tmp_path / "run", "space=table", f"space.path={path}",
                   "space.decisions=[l1,l2,l3,l4,l5,l6,l7]", "space.quality=acc", costs,
                   "strategy=layernas", "relative_constraints.macs=0.5", "budget=200")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert 0 < summary["validations"] <= 200
    assert summary["regret"]["macs"]["regret"] >= 0
    assert "Regret against the table" in done.stdout


@pytest.mark.slow
def test_a_bad_table_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame({"l1": [1, 2], "acc": [1.0, 2.0], "flops": [1, 2]}).to_csv(path, index=False)
    done = _search(tmp_path / "run", "space=table", f"space.path={path}",
                   f"space.decisions={decisions(2)}".replace("'", ""), "space.quality=acc",
                   "+space.costs={macs: flops}")  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "no column l2 (decision); its columns are" in errors[0]
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_the_reproduction_runs_on_any_table(tmp_path: Path) -> None:
    from bench import reproduce_tabular

    path = tmp_path / "sweep.csv"
    layer_table().to_csv(path, index=False)  # additive: LayerNAS and MathNAS solve it
    out = tmp_path / "out"
    reproduce_tabular.main(
        ["--space", "table", "--path", str(path), "--decisions", *decisions(), "--quality", "acc",
         "--costs", "macs=flops", "latency_ms=lat", "--fractions", "0.5", "--seeds", "1",
         "--workers", "1", "--budget", "40", "--linas-generations", "2", "--top-k", "3",
         "--refit-rounds", "2", "--out", str(out)]
    )  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())["table"]
    cell = summary["fractions"]["0.5"]
    frame = layer_table()
    assert cell["optimum"] == pytest.approx(frame.acc[frame.flops <= 0.5 * frame.flops.max()].max())
    expected = {"random", "evolution", "nsga2", "linas", "mathnas_nocorr", "layernas"}
    assert expected <= set(cell["strategies"])
    assert cell["strategies"]["layernas"]["regret@40"]["mean"] == pytest.approx(0.0, abs=1e-9)
    assert "## Table sweep" in (out / "report.md").read_text()
    assert (out / "table_regret.png").stat().st_size > 0
