"""Search strategies, one per module, all reading the same `Problem`: `mathnas`, `layernas`,
`linas`, `nsga2`, `evolution` and `random`."""
