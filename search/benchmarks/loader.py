"""Build a `TabularBenchmark` from the bundled tables or wherever the user keeps the data.

With no `path`, the tables that ship inside the package are used (`search/benchmarks/data/`,
see its README for their provenance). Otherwise `path` may be a compact CSV table (optionally
gzip-compressed), a folder of the published exports (`nats-sss/…`, `nas-bench-201/…`, or the
subfolder itself), or, with `source="nats_bench"`, the official NATS-Bench file or folder. A
relative path is taken from the working directory if it exists there, else from the
repository root.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from search.benchmarks.benchmark import TabularBenchmark
from search.benchmarks.convert import (
    NB201_DIR,
    NB201_TEST,
    SSS_ACC,
    SSS_DIR,
    VALIDATION_CHOICES,
    convert_nats_bench,
    convert_nats_sss,
    convert_nb201,
    find_file,
    open_nats_bench,
)
from search.benchmarks.errors import BenchmarkError
from search.benchmarks.spaces import NatsSizeSpace, NB201Space
from search.benchmarks.table import read_table, write_table

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED = Path(__file__).resolve().parent / "data"
BUNDLED_TABLES = {"nats_sss": BUNDLED / "nats_sss.csv.gz",
                  "nas_bench_201": BUNDLED / "nas_bench_201.csv.gz"}
SPACES = {
    "nats_sss": "nats_sss",
    "sss": "nats_sss",
    "size": "nats_sss",
    "nas_bench_201": "nas_bench_201",
    "nb201": "nas_bench_201",
    "nats_tss": "nas_bench_201",
    "tss": "nas_bench_201",
    "topology": "nas_bench_201",
}
SOURCES = ("auto", "csv", "exports", "nats_bench")
_TABLES: dict[tuple[str, ...], pd.DataFrame] = {}  # converted tables, reused within a process


def resolve_path(path: str | Path) -> Path:
    """Absolute path: as given, else from the working directory, else from the repo root."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p.resolve()
    return (REPO_ROOT / p).resolve()


def _looks_like_nats_bench(path: Path) -> bool:
    """Official NATS-Bench files: `NATS-{sss,tss}-v1_0-…` folders or `.pickle.pbz2` files."""
    if path.name.upper().startswith("NATS-") or path.name.endswith(".pbz2"):
        return path.exists()
    return path.is_dir() and any(path.glob("*.pickle.pbz2"))


def space_name(name: str) -> str:
    try:
        return SPACES[str(name).lower()]
    except KeyError:
        raise BenchmarkError(
            f"unknown tabular benchmark {name!r}; choose nats_sss or nas_bench_201"
        ) from None


def _is_table_file(path: Path) -> bool:
    return path.is_file() and path.name.endswith((".csv", ".csv.gz"))


def load_bundled_table(name: str, validation: str = "12ep") -> pd.DataFrame:
    """The table that ships with the package. NAS-Bench-201's holds the 12-epoch validation
    accuracy as `val_acc` and the 200-epoch test accuracy as `test_acc`; `200ep_test` searches
    on the latter."""
    df = read_table(BUNDLED_TABLES[name])
    if name == "nas_bench_201":
        if validation not in VALIDATION_CHOICES:
            raise BenchmarkError(f"validation={validation!r} is not one of "
                                 f"{list(VALIDATION_CHOICES)} (the figure a strategy searches on)")
        if validation == "200ep_test":
            df = df.assign(val_acc=df["test_acc"])
    return df


def load_table(
    name: str,
    path: str | Path | None,
    source: str = "auto",
    validation: str = "12ep",
    hp: str | None = None,
    cache: str | Path | None = None,
) -> pd.DataFrame:
    """The compact table (all datasets) of benchmark `name` found at `path` (None: bundled)."""
    name = space_name(name)
    if source not in SOURCES:
        raise BenchmarkError(f"source={source!r}; choose one of {list(SOURCES)}")
    if path is None:
        key_bundled = (name, "bundled", validation)
        if key_bundled not in _TABLES:
            _TABLES[key_bundled] = load_bundled_table(name, validation)
        return _TABLES[key_bundled]
    root = resolve_path(path)
    key = (name, str(root), source, validation, str(hp), str(cache))
    if key in _TABLES:
        return _TABLES[key]
    sub, marker = (SSS_DIR, SSS_ACC) if name == "nats_sss" else (NB201_DIR, NB201_TEST)
    if source == "csv" or (source == "auto" and _is_table_file(root)):
        df = read_table(root)
    elif source == "exports" or (source == "auto" and find_file(root, sub, marker) is not None):
        df = convert_nats_sss(root) if name == "nats_sss" else convert_nb201(root, validation)
    elif source == "nats_bench" or (source == "auto" and _looks_like_nats_bench(root)):
        cache_path = resolve_path(cache) if cache is not None else None
        if cache_path is not None and cache_path.is_file():
            df = read_table(cache_path)
        else:
            api = open_nats_bench(root, "sss" if name == "nats_sss" else "tss")
            df = convert_nats_bench(api, "sss" if name == "nats_sss" else "tss", hp=hp)
            if cache_path is not None:
                write_table(df, cache_path)
    else:
        raise BenchmarkError(
            f"no {name} data at {root}: give a compact CSV table, a folder with {sub}/{marker}, "
            f"or the official NATS-Bench files with source=nats_bench (set NAS_DATA or "
            f"space.path)"
        )
    _TABLES[key] = df
    return df


def load_benchmark(
    name: str,
    path: str | Path | None = None,
    dataset: str = "cifar10",
    source: str = "auto",
    validation: str = "12ep",
    canonical: bool = True,
    hp: str | None = None,
    cache: str | Path | None = None,
) -> TabularBenchmark:
    """The benchmark `name` (`nats_sss` | `nas_bench_201`) on `dataset`, from `path`.

    Args:
        name: which space the table must describe.
        path: compact CSV, exports folder or NATS-Bench files (see the module docstring);
            None: the table bundled with the package.
        dataset: `cifar10`, `cifar100` or `imagenet16_120`.
        source: `auto` (guess from `path`), `csv`, `exports` or `nats_bench`.
        validation: NAS-Bench-201 exports only: `12ep` or `200ep_test` (see `convert`).
        canonical: NAS-Bench-201 only: one Arch per class of isomorphic cells.
        hp: NATS-Bench training schedule (`"90"` size, `"200"` topology by default).
        cache: NATS-Bench source only: compact CSV written after the (slow) first read.
    """
    kind = space_name(name)
    df = load_table(kind, path, source, validation, hp, cache)
    bench = TabularBenchmark.from_table(
        df,
        dataset,
        canonical=canonical,
        info={"source": "bundled" if path is None else str(resolve_path(path)),
              "validation": validation, "name": kind},
    )
    expected = NatsSizeSpace if kind == "nats_sss" else NB201Space
    if not isinstance(bench.space, expected):
        raise BenchmarkError(
            f"the table at {path} describes {bench.space.name}, not {kind}; pick the matching "
            f"space= option"
        )
    return bench
