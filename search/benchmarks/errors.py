"""The one exception of the tabular benchmarks."""

from __future__ import annotations

from supernet.errors import NASError


class BenchmarkError(NASError, ValueError):
    """A table, arch string, dataset or constraint the benchmark cannot serve.

    The message names the problem and how to fix it (which column to add, which datasets
    the table has, how far a constraint must be loosened).
    """
