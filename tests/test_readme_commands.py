"""Every `python train.py` / `python search.py` command of the README runs as written, from a
scratch folder with nothing beside the repository, with only size overrides appended (epochs,
batches, budget, data subset, one seed, fewer timing repeats) so the whole README runs in
minutes. Commands that need hardware this machine lacks (a CUDA GPU) are skipped by name."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from tests.conftest import CONF_DIR, ROOT
from tests.search.column_tables import layer_table

README = ROOT / "README.md"
SCRIPTS = ("train.py", "search.py")
TIMEOUT = 900


def readme_commands() -> list[str]:
    """The README's train.py/search.py command lines (bash blocks, comments and `\\` joined)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if re.match(r"python (-m )?(train|search)\.py\b", line) or line.startswith(
                "python -m search.compare"
            ):
                commands.append(line)
    return commands


def _first_of_sweep(override: str) -> str:
    """`strategy=linas,nsga2` → `strategy=linas`: one job of a sweep, to read its config."""
    key, _, value = override.partition("=")
    if "," in value and not value.startswith(("[", "{")):
        value = value.split(",")[0]
    return f"{key}={value}"


def _config(script: str, overrides: list[str]):
    plain = [_first_of_sweep(o) for o in overrides if not o.startswith(("-", "hydra/"))]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=script.removesuffix(".py"), overrides=plain)


def size_overrides(script: str, overrides: list[str]) -> list[str]:
    """What makes one command small: it depends on the composed data and strategy."""
    cfg = _config(script, overrides)
    data = str(cfg.data._target_)
    out = ["threads=1", "seed=0"]
    if script == "train.py":
        out += ["trainer.max_epochs=1", "trainer.limit_train_batches=2",
                "trainer.limit_val_batches=2", "logger=csv"]
        if data.endswith("NumbersEnFrDataModule"):
            out += ["data.num_train=300", "data.num_valid=16", "data.num_test=16",
                    "data.max_digits=3", "data.max_tokens=400"]
        elif data.endswith("NumberPhrasesDataModule"):
            out += ["data.num_train=300", "data.num_valid=16", "data.num_test=16",
                    "data.vocab_size=160", "data.max_tokens=400"]
        elif "module.num_random_eval" not in " ".join(overrides):
            out += ["module.num_random_eval=1", "data.calib_images=64"]
        if data.endswith("GlyphsDataModule"):  # a prefix of the default images
            out += ["data.train_size=256", "data.val_size=128", "data.test_size=128"]
        if str(cfg.recipe._target_).endswith("ProgressiveShrinking"):
            out += ["trainer.max_epochs=2"]  # two phases: the full net and one shrinking phase
        return out
    out += ["wandb.enabled=false"]
    if cfg.get("space") is None:
        out += ["evaluation.max_val_batches=1", "evaluation.translation.max_sentences=8"]
    # MathNAS keeps the command's budget: it must cover the block table, as the README says
    strategy = str(cfg.strategy._target_).rsplit(".", 1)[-1]
    if strategy != "MathNAS":
        out += [f"budget={ {'LayerNAS': 60}.get(strategy, 6) }"]
    if "meter" in cfg.hardware:
        out += ["hardware.meter.repeats=3", "hardware.meter.warmup=1"]
    if "pool" in cfg.hardware:
        out += ["hardware.pool=8"]
    return out


def _needs_missing_hardware(command: str) -> str | None:
    if not torch.cuda.is_available() and re.search(r"hardware=gpu|device=cuda|trainer=gpu",
                                                   command):
        return "needs a CUDA GPU"
    return None


def _latest(pattern: str, cwd: Path) -> str:
    found = sorted(cwd.glob(pattern), key=lambda p: p.stat().st_mtime)
    assert found, f"nothing matches {pattern} in {cwd}"
    return str(found[-1])


def _placeholders(command: str, cwd: Path) -> str:
    """Paths a reader substitutes (`<time>`) are those of the runs made before."""
    for kind in ("search/multiruns", "train/runs", "search/runs"):
        if f"outputs/{kind}/<time>" in command:
            command = command.replace(f"outputs/{kind}/<time>",
                                      _latest(f"outputs/{kind}/*", cwd))
    return command


@pytest.mark.slow
def test_every_readme_command_runs(tmp_path: Path) -> None:
    commands = readme_commands()
    assert len(commands) >= 8, commands
    # training first: the searches look for the newest checkpoint, as for a user
    ordered = sorted(commands, key=lambda c: (("train.py" not in c), "compare" in c))
    env = {**os.environ, "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "1",
           "PYTHONPATH": str(ROOT)}
    # the user's own table that the `space=table` example names
    layer_table(layers=7).to_csv(tmp_path / "my.csv", index=False)
    ran, skipped = [], []
    for command in ordered:
        reason = _needs_missing_hardware(command)
        if reason:
            skipped.append((command, reason))
            continue
        words = shlex.split(_placeholders(command, tmp_path))
        if words[1:3] == ["-m", "search.compare"]:
            argv = [sys.executable, *words[1:]]
        else:
            script = words[1]
            overrides = words[2:]
            argv = [sys.executable, str(ROOT / script), *overrides,
                    *size_overrides(script, overrides)]
        proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT)
        assert proc.returncode == 0, f"{command}\n{proc.stderr[-3000:]}"
        assert "Traceback" not in proc.stderr, command
        ran.append(command)
    assert len(skipped) <= 2, skipped  # only what needs a GPU
    assert ran
