"""Every command the README and the docs show refers to what exists.

A `python train.py ...` or `python search.py ...` line composes with Hydra exactly as written
(each value of a sweep), so a renamed option, group or key breaks this test rather than a
reader's first run; a `python bench/<script>.py --flag` line names a script that exists and
flags its argument parser declares. Running them is left to the README test and the benches:
most train or search for minutes.
"""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_SHELL_BLOCK = re.compile(r"```(?:bash|sh|console)?\n(.*?)```", re.S)


def _command_lines() -> list[tuple[str, str]]:
    """(page, command) for every line of every shell block, continuation lines joined."""
    found = []
    for page in PAGES:
        for block in _SHELL_BLOCK.findall(page.read_text()):
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                line = line.split(" #")[0].strip()
                if line:
                    found.append((str(page.relative_to(ROOT)), line))
    return found


_LINES = _command_lines()
_ENTRY = re.compile(r"^(?:\S+=\S+ )*python (train|search)\.py(?: (.*))?$")
_BENCH = re.compile(r"python (bench/\S+\.py)(.*)")
ENTRY_COMMANDS = [(page, line) for page, line in _LINES if _ENTRY.match(line)]
BENCH_COMMANDS = [(page, line) for page, line in _LINES if _BENCH.search(line)]


def _runs(line: str) -> tuple[str, list[list[str]]]:
    """The config name and the override lists a command line runs (one per sweep point).

    Placeholders such as `<time>` become plain text; `-m` and `--cfg job` are not overrides.
    """
    match = _ENTRY.match(line)
    assert match is not None
    args = shlex.split(re.sub(r"<([^>]*)>", r"\1", match.group(2) or ""))
    args = [a for a in args if a not in ("-m", "--multirun")]
    if "--cfg" in args:
        at = args.index("--cfg")
        del args[at : at + 2]
    choices = []
    for override in OverridesParser.create().parse_overrides(args):
        if override.is_sweep_override():
            key = override.get_key_element()
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([override.input_line])
    return match.group(1), [list(run) for run in itertools.product(*choices)]


def test_the_pages_show_commands() -> None:
    """The collection itself works: the README alone shows more than ten entry-point lines."""
    assert sum(page == "README.md" for page, _ in ENTRY_COMMANDS) > 10
    assert BENCH_COMMANDS


@pytest.mark.parametrize(
    ("page", "line"), ENTRY_COMMANDS, ids=[f"{p}:{line[:60]}" for p, line in ENTRY_COMMANDS]
)
def test_documented_command_composes(
    page: str, line: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # the pages' commands run from the repository's root
    config_name, runs = _runs(line)
    for overrides in runs:
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            try:
                compose(config_name, overrides=overrides, return_hydra_config=True)
            except Exception as exc:  # noqa: BLE001 - the message names what the page got wrong
                pytest.fail(f"{page}: `{line}` does not compose ({overrides}): {exc}")


def test_sweeps_expand_to_every_point() -> None:
    """`a=1,2 b=x,y` runs four configurations, each composed on its own."""
    config_name, runs = _runs("python search.py -m strategy=linas,random seed=0,1 budget=5")
    assert config_name == "search"
    assert len(runs) == 4 and ["strategy=random", "seed=1", "budget=5"] in runs


def test_a_misspelt_option_is_caught() -> None:
    """What the parametrized test relies on: an unknown key or option does not compose."""
    for line in ("python search.py strategy=linsa", "python train.py trainer.max_epoch=1"):
        config_name, (overrides,) = _runs(line)
        with (
            initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"),
            pytest.raises(Exception),  # noqa: B017, PT011 - Hydra's own error types vary
        ):
            compose(config_name, overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize(
    ("page", "line"), BENCH_COMMANDS, ids=[f"{p}:{line[:60]}" for p, line in BENCH_COMMANDS]
)
def test_documented_bench_script_exists_with_its_flags(page: str, line: str) -> None:
    match = _BENCH.search(line)
    assert match is not None
    script = ROOT / match.group(1)
    assert script.is_file(), f"{page} runs {match.group(1)}, which does not exist"
    source = script.read_text()
    for helper in re.findall(r"^from bench\.(\w+) import", source, re.M):  # shared options
        source += (ROOT / "bench" / f"{helper}.py").read_text()
    for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", match.group(2)):
        if not re.search(rf"[\"']{re.escape(flag)}[\"']", source):
            pytest.fail(f"{page}: {match.group(1)} declares no option {flag}")
