"""The tabular reproduction command end to end, on synthetic tables and a few seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import reproduce_tabular
from tests.search.synthetic_tables import (
    nb201_table,
    sss_table,
    write_nb201_exports,
    write_sss_exports,
)


@pytest.mark.slow
def test_reproduction_writes_the_report_summary_and_figures(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_sss_exports(data, sss_table())
    write_nb201_exports(data, nb201_table(("cifar10", "cifar100", "imagenet16_120")))
    out = tmp_path / "out"
    reproduce_tabular.main(
        [
            "--data-dir", str(data), "--out", str(out), "--datasets", "cifar10",
            "--seeds", "2", "--workers", "1", "--budget", "80", "--nb201-budget", "60",
            "--linas-generations", "2", "--top-k", "3", "--refit-rounds", "2",
            "--contexts", "2", "--fractions", "0.5", "--nb201-validation", "12ep",
            "--quality-seeds", "1",
        ]
    )  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    sss = summary["sss"]["cifar10"]
    expected = {"random", "evolution", "nsga2", "linas", "layernas", "mathnas_nocorr",
                "mathnas_nocorr_top3"}
    assert expected <= set(sss["strategies"])
    # every row says what it runs beyond the shipped defaults
    assert sss["strategies"]["random"]["settings"] == "shipped defaults"
    assert "flops_correction=False" in sss["strategies"]["mathnas_nocorr"]["settings"]
    assert "generations=2" in sss["strategies"]["linas"]["settings"]
    # the synthetic size table is additive, so LayerNAS's assumptions hold: it finds the optimum
    last = sss["checkpoints"][-1]
    assert last == 80
    assert sss["strategies"]["layernas"][f"regret@{last}"]["mean"] == pytest.approx(0.0, abs=1e-9)
    assert sss["strategies"]["random"][f"regret@{last}"]["mean"] >= 0.0
    assert sss["strategies"]["random"]["seeds"] == 2
    cell = summary["nb201"]["12ep"]["cifar10"]["0.5"]["variants"]
    assert {"mathnas", "mathnas_avg2", "mathnas_top3", "mathnas_top3_refit2"} <= set(cell)
    assert -1.0 <= cell["mathnas"]["quality"]["spearman_val"] <= 1.0
    report = (out / "report.md").read_text()
    assert "NATS-Bench size" in report and "NAS-Bench-201" in report
    assert "| mathnas_nocorr | flops_correction=False, quality_sample=0 |" in report
    assert (out / "sss_regret.png").stat().st_size > 0
    assert (out / "nb201_regret_12ep.png").stat().st_size > 0
