"""Tabular NAS benchmarks: NATS-Bench size, NAS-Bench-201 and any table as look-up spaces.

`load_benchmark(name, path, dataset)` gives a `TabularBenchmark` whose `space`, `validate` and
`cost` make a `Problem` every strategy runs on; see `table` for the compact CSV format,
`convert` for the published exports and the NATS-Bench API, `spaces` for arch strings and
isomorphic cells. `load_column_table` opens any CSV or Parquet table with one row per
architecture (`column_table`, `column_space`); `regret` compares a search with the table's best.
"""

from search.benchmarks.benchmark import COST_METRICS, TabularBenchmark
from search.benchmarks.column_space import ColumnSpace
from search.benchmarks.column_table import ColumnBenchmark, load_column_table, read_frame
from search.benchmarks.convert import convert_nats_bench, convert_nats_sss, convert_nb201
from search.benchmarks.errors import BenchmarkError
from search.benchmarks.loader import load_benchmark, load_table, resolve_path
from search.benchmarks.regret import TableOracle, regret_table
from search.benchmarks.spaces import (
    NB201_OPS,
    SSS_CHANNELS,
    NatsSizeSpace,
    NB201Space,
    format_cell,
    parse_cell,
    unique_string,
)
from search.benchmarks.table import DATASETS, read_table, write_table

__all__ = [
    "COST_METRICS",
    "DATASETS",
    "NB201_OPS",
    "SSS_CHANNELS",
    "BenchmarkError",
    "ColumnBenchmark",
    "ColumnSpace",
    "NB201Space",
    "NatsSizeSpace",
    "TableOracle",
    "TabularBenchmark",
    "convert_nats_bench",
    "convert_nats_sss",
    "convert_nb201",
    "format_cell",
    "load_benchmark",
    "load_column_table",
    "load_table",
    "parse_cell",
    "read_frame",
    "read_table",
    "regret_table",
    "resolve_path",
    "unique_string",
    "write_table",
]
