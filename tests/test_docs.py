"""The docs: the generated configuration reference is complete and fresh, the README short."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

pytest.importorskip("ruamel.yaml", reason="the docs extra: pip install -e '.[docs]'")

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "gen_config_reference", ROOT / "docs" / "gen_config_reference.py"
)
assert _spec is not None and _spec.loader is not None
gen = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = gen
_spec.loader.exec_module(gen)


def test_every_key_in_conf_has_a_comment() -> None:
    missing = gen.missing_comments()
    assert not missing, "keys without a `# ...` comment in conf/: " + ", ".join(missing)


def test_configuration_reference_is_fresh(page: str) -> None:
    """The committed page equals what conf/ generates now."""
    assert gen.PAGE.read_text() == page, (
        "docs/reference/configuration.md is stale: run python docs/gen_config_reference.py"
    )


def _leaves(node: object, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return []
    out = []
    for key, value in node.items():
        if key in gen.META_KEYS:
            continue
        out.append(f"{prefix}{key}")
        out += _leaves(value, f"{prefix}{key}.") if value else []
    return out


@pytest.fixture(scope="module")
def page() -> str:
    return gen.render()


@pytest.mark.parametrize(
    "path", sorted(gen.CONF.rglob("*.yaml")), ids=lambda p: str(p.relative_to(gen.CONF))
)
def test_reference_lists_every_key(page: str, path: Path) -> None:
    """Every key OmegaConf reads from a file has a row (checks the comment-aware parser)."""
    cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    group = path.parent.relative_to(gen.CONF).as_posix()
    prefix = "" if group == "." else gen.key_prefix(group)
    missing = [k for k in _leaves(cfg) if f"| `{prefix}{k}` |" not in page]
    assert not missing, f"{path.name}: not in the reference: {missing}"


def test_comment_parser_reads_leading_trailing_and_continued_comments(tmp_path: Path) -> None:
    (tmp_path / "g").mkdir()
    path = tmp_path / "g" / "opt.yaml"
    path.write_text(
        "# @package _global_\n"
        "# What the option is for.\n"
        "_target_: a.B\n"
        "width: 3       # a trailing comment\n"
        "               # continued under it\n"
        "# a comment line above\n"
        "depth: [1, 2]  # and one on the line\n"
        "inner:         # a mapping\n"
        "  key: 'x # y' # after a quoted hash\n"
        "bare: 1\n"
        "items:         # a block list\n"
        "  - 1\n"
        "  - 2\n"
    )
    cfg = gen.parse(path, root=tmp_path)
    assert cfg.header == ["What the option is for."]
    assert cfg.target == "a.B"
    found = {k.path: (k.value, k.comment) for k in cfg.keys}
    assert found == {
        "width": ("3", "a trailing comment continued under it"),
        "depth": ("[1, 2]", "a comment line above and one on the line"),
        "inner": ("", "a mapping"),
        "inner.key": ("'x # y'", "after a quoted hash"),
        "bare": ("1", ""),
        "items": ("", "a block list"),
    }
    assert [k.block for k in cfg.keys if k.path == "items"] == ["- 1\n- 2"]


def test_readme_fits_on_a_screen_and_its_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme) <= 15_000, f"README.md has {len(readme):,} characters (at most 15,000)"
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme):
        assert (ROOT / target).exists(), f"README links to a missing file: {target}"


_DOCS = ROOT / "docs"
# a block right after `<!-- not run: <reason> -->` needs what a test cannot have (a download)
_SNIPPETS = [
    (path, block)
    for path in sorted(_DOCS.rglob("*.md"))
    for skip, block in re.findall(
        r"(<!-- not run: [^>]+-->\s*)?```python\n(.*?)```", path.read_text(), re.S
    )
    if not skip
]


@pytest.mark.parametrize(
    ("path", "code"), _SNIPPETS, ids=[str(p.relative_to(_DOCS)) for p, _ in _SNIPPETS]
)
def test_python_examples_in_the_docs_run(
    path: Path, code: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ```python block of the site runs as written (they are small and offline), from
    the repository's root as the pages say."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "path", list(sys.path))  # a block's sys.path.insert stays its own
    exec(compile(code, str(path), "exec"), {"__name__": "__docs__"})
