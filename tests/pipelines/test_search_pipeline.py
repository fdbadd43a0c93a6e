"""Search end to end on the tiny checkpoint: every strategy writes every output; the store
survives a killed process."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from search.problem import ProblemError
from search.store import Store, StoreError
from supernet.errors import CheckpointError
from tests.conftest import CONF_DIR, ROOT
from tests.pipelines.conftest import compose_in

STRATEGIES = sorted(p.stem for p in (CONF_DIR / "strategy").glob("*.yaml"))
FAST = ("evaluation.max_val_batches=1", "data.calib_images=128", "wandb.enabled=false")
# budgets that let each strategy finish its own procedure on the tiny space
BUDGETS = {"mathnas": 80, "layernas": 40}


def _search(tmp_path: Path, ckpt: Path, *overrides: str):
    from search.pipeline import run

    out = tmp_path / "search" / "run"
    cfg = compose_in(
        "search", out, "supernet=mobilenetv3_tiny", f"ckpt_path={ckpt}",
        f"store_path={tmp_path / 'store.sqlite'}", *FAST, *overrides,
    )
    cfg.paths.log_dir = str(ckpt.parents[3])
    return run(cfg), out


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_writes_every_output(strategy: str, tiny_ckpt: Path, tmp_path: Path) -> None:
    budget = BUDGETS.get(strategy, 12)
    result, out = _search(
        tmp_path, tiny_ckpt, f"strategy={strategy}", "hardware=flops", f"budget={budget}",
        "constraints.macs=6e6",
    )
    assert 0 < len(result.rows) <= budget
    frame = pd.read_csv(out / "results.csv")
    expected = {"arch_id", "arch", "accuracy", "macs", "params", "strategy", "seed"}
    assert expected <= set(frame.columns)
    assert len(frame) == len(result.rows)
    assert (frame["strategy"] == strategy).all()
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["hypervolume"]) == len(result.rows)
    for png in ("pareto.png", "hypervolume.png"):
        assert (out / png).stat().st_size > 1000
    best = [p for p in (out / "best").glob("best_*.yaml")]
    assert best, "no best subnet exported"
    info = yaml.safe_load(best[0].read_text())
    assert info["metrics"]["macs"] <= 6e6
    assert best[0].with_suffix(".pt").is_file()


def test_latency_search_measures_and_reuses(tiny_ckpt: Path, tmp_path: Path) -> None:
    overrides = ("strategy=random", "hardware=cpu", "budget=4", "hardware.meter.repeats=5",
                 "hardware.meter.warmup=2")
    first, _ = _search(tmp_path, tiny_ckpt, *overrides)
    assert all(r.metrics["latency_ms"] > 0 for r in first.rows)
    second, out = _search(tmp_path, tiny_ckpt, *overrides)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["measured"] == 0 and summary["reused_from_store"] == 4
    assert [r.metrics for r in second.rows] == [r.metrics for r in first.rows]


def test_bad_search_input_is_refused(tiny_ckpt: Path, tmp_path: Path) -> None:
    with pytest.raises(ProblemError, match="cannot be met"):
        _search(tmp_path, tiny_ckpt, "strategy=random", "hardware=flops", "constraints.macs=10")
    assert not (tmp_path / "store.sqlite").exists()  # failed before measuring: no empty store
    with pytest.raises(ProblemError, match="budget"):
        _search(tmp_path, tiny_ckpt, "strategy=random", "hardware=flops", "budget=0")
    with pytest.raises(ProblemError, match="unknown objective"):
        _search(tmp_path, tiny_ckpt, "strategy=random", "objectives=[accuracy,speed]")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        _search(tmp_path, tmp_path / "a" / "b" / "c" / "missing.ckpt", "strategy=random")
    foreign = tmp_path / "foreign.sqlite"
    with Store(foreign, checkpoint="0" * 64) as other:  # the store of another checkpoint
        other.put("toy", "0" * 64, "a", {}, {"accuracy": 1.0})
    with pytest.raises(StoreError, match="another"):
        _search(tmp_path, tiny_ckpt, "strategy=random", "hardware=flops", "budget=2",
                f"store_path={foreign}")


@pytest.mark.slow
def test_killed_search_resumes_without_remeasuring(tiny_ckpt: Path, tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    cmd = [
        sys.executable, "search.py", "strategy=random", "hardware=flops", "budget=40",
        "supernet=mobilenetv3_tiny", f"ckpt_path={tiny_ckpt}", f"store_path={store}",
        "evaluation.max_val_batches=2", "wandb.enabled=false", f"hydra.run.dir={tmp_path}/r1",
    ]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    stored_before = 0
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
        if store.exists():
            with sqlite3.connect(store) as conn:
                try:
                    stored_before = conn.execute(
                        "SELECT COUNT(*) FROM measurements WHERE metrics LIKE '%accuracy%'"
                    ).fetchone()[0]
                except sqlite3.OperationalError:
                    continue
            if stored_before >= 5:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 5 <= stored_before < 40, "the search should have been killed mid-run"
    with sqlite3.connect(store) as conn:
        stored_at_kill = conn.execute(
            "SELECT COUNT(*) FROM measurements WHERE metrics LIKE '%accuracy%'"
        ).fetchone()[0]
    cmd[-1] = f"hydra.run.dir={tmp_path}/r2"
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    summary = json.loads((tmp_path / "r2" / "summary.json").read_text())
    assert summary["reused_from_store"] == stored_at_kill
    assert summary["measured"] == 40 - stored_at_kill
