"""Write the configuration reference (docs/reference/configuration.md) from `conf/`.

    python docs/gen_config_reference.py            # rewrite the page
    python docs/gen_config_reference.py --check    # exit 1: stale page or a key without comment

Every group, option and key of `conf/` is listed with the `# ...` comments of its YAML file, so
the reference cannot drift from the configs: a test regenerates the page and compares, and fails
when a key has no comment. Comments are read with ruamel.yaml (which keeps them and their
positions); a key's comment is the comment on its line plus the comment lines aligned under it,
preceded by the comment lines directly above the key at its own indentation.
"""

from __future__ import annotations

import argparse
import html
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.tokens import CommentToken

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
PAGE = ROOT / "docs" / "reference" / "configuration.md"
PRIMARY = {"train.yaml": "python train.py", "search.yaml": "python search.py"}
# what each group chooses (a group is a folder, which has no comment of its own)
GROUPS = {
    "data": "dataset, splits, image geometry or vocabularies and token batching",
    "supernet": "the weight-sharing network and its choice lists",
    "supernet/transformer_scale": "the choice lists of the Transformer space "
    "(`supernet/transformer_scale@supernet=hat_wmt`)",
    "module": "the LightningModule: loss, optimizer, schedule, validation subnets",
    "recipe": "which subnets each training step trains",
    "trainer": "Lightning `Trainer` arguments",
    "logger": "experiment logging of training",
    "callbacks": "checkpoints (last + best) and the progress bar",
    "strategy": "the search algorithm",
    "hardware": "the cost model (costs never count against the budget)",
    "space": "a tabular benchmark instead of a supernet",
    "pretrained": "a published supernet (Once-for-All, HAT) searched instead of a checkpoint",
    "paths": "where data, runs and sweeps live",
    "hydra": "run and sweep directories",
    "hydra/launcher": "where the jobs of a sweep (`-m`) run; without it, one after the other here",
    "experiment": "named sets of overrides, only the differences from the defaults",
    "hparams_search": "hyperparameter sweeps of training",
}
# Hydra's instantiation keys: shown with their node (`_target_`) or not at all
META_KEYS = {"_target_", "_partial_", "_convert_", "_recursive_", "defaults"}


@dataclass
class Key:
    """One key of a config file: its dotted path, its value as written, and its comment."""

    path: str
    value: str
    comment: str
    line: int
    block: str = ""  # a value written over several lines, as written


@dataclass
class ConfigFile:
    """A parsed YAML file of `conf/`: header comment, defaults list, target and keys."""

    rel: str
    header: list[str]
    target: str | None
    defaults: list[Key] = field(default_factory=list)
    keys: list[Key] = field(default_factory=list)


class _Comments:
    """The comments of one file by line: (column, text), whole-line and end-of-line ones."""

    def __init__(self, text: str, data: Any) -> None:
        self.lines = text.splitlines()
        self.at: dict[int, tuple[int, str]] = {}
        for i, line in enumerate(self.lines):
            if line.lstrip().startswith("#"):
                self.at[i] = (len(line) - len(line.lstrip()), line.strip()[1:].strip())
        for token in _tokens(data):
            line, col = token.start_mark.line, token.start_mark.column
            first = token.value.split("\n", 1)[0].strip()
            on_line = line < len(self.lines) and self.lines[line][col:].startswith("#")
            if line not in self.at and on_line and first.startswith("#"):  # end of a line
                self.at[line] = (col, first[1:].strip())
        self.first_key = next(
            (i for i, s in enumerate(self.lines) if s.strip() and not s.lstrip().startswith("#")),
            len(self.lines),
        )

    def _comment_only(self, line: int) -> bool:
        return 0 <= line < len(self.lines) and self.lines[line].lstrip().startswith("#")

    def of(self, line: int) -> str:
        """The comment of the item on `line`: lines above it, on it, and aligned under it."""
        indent = len(self.lines[line]) - len(self.lines[line].lstrip())
        above: list[str] = []
        i = line - 1
        while i >= self.first_key and self._comment_only(i) and self.at[i][0] == indent:
            above.insert(0, self.at[i][1])
            i -= 1
        parts = above
        if line in self.at:
            col, text = self.at[line]
            parts.append(text)
            j = line + 1
            while self._comment_only(j) and self.at[j][0] == col:
                parts.append(self.at[j][1])
                j += 1
        return " ".join(p for p in parts if p)

    def value_text(self, line: int, col: int) -> str:
        """The value as written from (line, col) to its end-of-line comment."""
        text = self.lines[line]
        end = self.at[line][0] if line in self.at and self.at[line][0] > col else len(text)
        return text[col:end].strip()

    def block(self, line: int) -> str:
        """The lines of a multi-line value under the key on `line`, dedented."""
        indent = len(self.lines[line]) - len(self.lines[line].lstrip())
        out = []
        for text in self.lines[line + 1 :]:
            depth = len(text) - len(text.lstrip())
            if text.strip() and depth <= indent and not text.lstrip().startswith("- "):
                break
            out.append(text)
        while out and not out[-1].strip():
            out.pop()
        return textwrap.dedent("\n".join(out))

    def header(self) -> list[str]:
        """The comment lines before the first key, without Hydra's `@package` directive."""
        out = []
        for i in range(self.first_key):
            raw = self.lines[i].strip()
            if raw.startswith("#") and not raw.startswith("# @package"):
                out.append(raw[2:] if raw.startswith("# ") else raw[1:])
        return out


def _tokens(node: Any) -> Iterator[CommentToken]:
    """Every comment token ruamel.yaml attached anywhere under `node`."""

    def walk(obj: Any) -> Iterator[CommentToken]:
        if isinstance(obj, CommentToken):
            yield obj
        elif isinstance(obj, (list, tuple)):
            for o in obj:
                yield from walk(o)

    if isinstance(node, (CommentedMap, CommentedSeq)):
        yield from walk(node.ca.comment)
        yield from walk(list(node.ca.items.values()))
        children = node.values() if isinstance(node, CommentedMap) else node
        for child in children:
            yield from _tokens(child)


def _flow(value: Any) -> str:
    """A compact one-line rendering of a block value (a list written over several lines)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return "null" if value is None else str(value)


def _is_block_map(value: Any) -> bool:
    return isinstance(value, CommentedMap) and len(value) > 0 and not value.fa.flow_style()


def _keys(node: CommentedMap, comments: _Comments, prefix: str = "") -> Iterator[Key]:
    """The keys of a mapping in file order; nested block mappings give dotted paths."""
    for name, value in node.items():
        if name in META_KEYS:
            continue
        path = f"{prefix}{name}"
        line, _ = node.lc.key(name)
        if _is_block_map(value):
            target = value.get("_target_")
            yield Key(path, f"{target}" if target else "", comments.of(line), line)
            yield from _keys(value, comments, prefix=f"{path}.")
            continue
        vline, vcol = node.lc.value(name)
        if vline == line:
            yield Key(path, comments.value_text(vline, vcol), comments.of(line), line)
        else:  # a block list: shown whole under the table
            yield Key(path, "", comments.of(line), line, comments.block(line))


def parse(path: Path, root: Path = CONF) -> ConfigFile:
    """Read one config file with its comments."""
    text = path.read_text()
    data = YAML().load(text)
    comments = _Comments(text, data)
    rel = path.relative_to(root).as_posix()
    if not isinstance(data, CommentedMap):
        return ConfigFile(rel, comments.header(), None)
    out = ConfigFile(rel, comments.header(), data.get("_target_"))
    defaults = data.get("defaults")
    if isinstance(defaults, CommentedSeq):
        for i, item in enumerate(defaults):
            line, _ = defaults.lc.item(i)
            shown = _flow(item)[1:-1] if isinstance(item, dict) else str(item)
            out.defaults.append(Key(shown, "", comments.of(line), line))
    out.keys = list(_keys(data, comments))
    return out


def groups() -> dict[str, list[Path]]:
    """Config groups (folders of `conf/`, nested ones included) -> their option files."""
    found: dict[str, list[Path]] = {}
    for path in sorted(CONF.rglob("*.yaml")):
        if path.parent != CONF:
            found.setdefault(path.parent.relative_to(CONF).as_posix(), []).append(path)
    order = [
        "data", "supernet", "supernet/transformer_scale", "module", "recipe", "trainer", "logger",
        "callbacks", "strategy", "hardware", "space", "paths", "hydra", "hydra/launcher",
        "experiment", "hparams_search",
    ]  # fmt: skip
    ranked = sorted(found, key=lambda g: (order.index(g) if g in order else len(order), g))
    return {g: found[g] for g in ranked}


def _cell(text: str) -> str:
    """Escape text for a markdown table cell: HTML-sensitive characters and pipes."""
    return html.escape(text, quote=False).replace("|", "\\|")


def _code(text: str) -> str:
    if not text:
        return ""
    tick = "``" if "`" in text else "`"
    return f"{tick}{text.replace('|', chr(92) + '|')}{tick}"


def _prose(lines: list[str]) -> list[str]:
    """Header comment lines as markdown: indented lines (commands, lists) become code blocks."""
    out: list[str] = []
    para: list[str] = []
    code: list[str] = []

    def flush() -> None:
        if para:
            out.extend([_cell(" ".join(para)).replace("\\|", "|"), ""])
            para.clear()
        if code:
            out.extend(["```text", *code, "```", ""])
            code.clear()

    for line in lines:
        is_code = line.startswith(("  ", "python "))
        if (is_code and para) or (not is_code and code):
            flush()
        (code if is_code else para).append(line.removeprefix("  ") if is_code else line.strip())
    flush()
    return out


def _table(keys: list[Key], prefix: str) -> list[str]:
    rows = ["| key | value | meaning |", "|---|---|---|"]
    for k in keys:
        value = "(below)" if k.block else _code(k.value)
        rows.append(f"| `{prefix}{k.path}` | {value} | {_cell(k.comment)} |")
    rows.append("")
    for k in keys:
        if k.block:
            rows += [f"`{prefix}{k.path}`:", "", "```yaml", k.block, "```", ""]
    return rows


def key_prefix(group: str) -> str:
    """How a key of the group is named on the command line."""
    if group in ("experiment", "hparams_search"):  # `# @package _global_`
        return ""
    return {"supernet/transformer_scale": "supernet."}.get(group, group.replace("/", ".") + ".")


def _option(cfg: ConfigFile, group: str, option: str) -> list[str]:
    prefix = key_prefix(group)
    out = [f"### `{group}={option}`", "", *_prose(cfg.header)]
    if cfg.target:
        out += [f"Builds `{cfg.target}`.", ""]
    if cfg.defaults:
        out += ["Defaults list: " + ", ".join(f"`{d.path}`" for d in cfg.defaults) + ".", ""]
    if cfg.keys:
        out += _table(cfg.keys, prefix)
    elif not cfg.target:
        out += ["No keys.", ""]
    return out


def render() -> str:
    """The whole reference page."""
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated from conf/ by docs/gen_config_reference.py: edit the YAML comments, "
        "then run `python docs/gen_config_reference.py`. -->",
        "",
        "Every group, option and key of `conf/`, with the comment its YAML file gives it. "
        "Choose an option with `group=option`, set a key with its dotted path "
        "(`strategy.population=20`), add a key the file lacks with `+key=value`; "
        "see [Overrides](overrides.md). A value such as `${seed}` is an interpolation: it "
        "follows the key it names unless set itself.",
        "",
        "## Entry points",
        "",
    ]
    for name, command in PRIMARY.items():
        cfg = parse(CONF / name)
        out += [f"### `conf/{name}` (`{command}`)", "", *_prose(cfg.header)]
        out += ["| default group | comment |", "|---|---|"]
        out += [f"| `{d.path}` | {_cell(d.comment)} |" for d in cfg.defaults]
        out += ["", *_table(cfg.keys, "")]
    found = groups()
    out += ["## Groups", "", "| group | chooses | options |", "|---|---|---|"]
    for group, paths in found.items():
        opts = ", ".join(f"[`{p.stem}`](#{_anchor(group, p.stem)})" for p in paths)
        out.append(f"| `{group}` | {GROUPS[group]} | {opts} |")
    out.append("")
    for group, paths in found.items():
        out += [f"## `{group}`", "", GROUPS[group][0].upper() + GROUPS[group][1:] + ".", ""]
        for path in paths:
            out += _option(parse(path), group, path.stem)
    return "\n".join(out).rstrip() + "\n"


def _anchor(group: str, option: str) -> str:
    """The id the markdown `toc` extension gives the heading of an option."""
    return f"{group}{option}".replace("/", "").lower()


def missing_comments() -> list[str]:
    """`file: key` for every key (and defaults entry of an entry point) without a comment."""
    out = []
    for path in sorted(CONF.rglob("*.yaml")):
        cfg = parse(path)
        out += [f"{cfg.rel}: {k.path}" for k in cfg.keys if not k.comment]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if stale or uncommented")
    args = parser.parse_args(argv)
    missing = missing_comments()
    for m in missing:
        print(f"no comment: {m}", file=sys.stderr)
    page = render()
    if args.check:
        stale = not PAGE.exists() or PAGE.read_text() != page
        if stale:
            print(
                f"{PAGE.relative_to(ROOT)} is stale: run python docs/gen_config_reference.py",
                file=sys.stderr,
            )
        return 1 if stale or missing else 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(page)
    print(f"wrote {PAGE.relative_to(ROOT)} ({len(page):,} characters)")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
