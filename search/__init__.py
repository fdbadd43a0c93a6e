"""Hardware-aware architecture search over supernets and tabular benchmarks: the problem, the
measurement store, results and reports at this level; evaluators, cost models, MathNAS block
machinery, strategies and benchmarks in the subpackages."""
