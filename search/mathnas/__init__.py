"""MathNAS's block machinery: the block table (what each candidate block costs and drops), how
it is measured on a problem, and the exact solvers that pick the best network from it.

- `table`: `BlockTable`, its file format and its predictions;
- `measure`: m·n counted validations that fill a table (`measure_block_table`);
- `solve`: the exact 0-1 program (HiGHS through scipy, or `dp`), with `reduce` shrinking it;
- `rank`: ranking every network of a small table, and refitting a table on validations.

The strategy itself is `search.strategies.mathnas.MathNAS`.
"""

from search.mathnas.measure import measure_block_table, plan_block_table
from search.mathnas.solve import solve_block_table
from search.mathnas.table import BlockTable, BlockTableError

__all__ = [
    "BlockTable",
    "BlockTableError",
    "measure_block_table",
    "plan_block_table",
    "solve_block_table",
]
