"""The schema of `search.yaml`: its top-level keys and the options of strategy, hardware (and
its meter) and space, each found by the `_target_` of the node; see `supernet.schema`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from search.hardware.device import FEATURES as DEVICE_FEATURES
from search.hardware.meter import CLOCKS
from search.mathnas.measure import CONTEXTS
from search.mathnas.solve import ENGINES
from search.strategies.layernas import BUCKET_RANGES, FILLS
from supernet.environment import check_cuda, check_writable_dir, check_writable_file
from supernet.errors import ConfigError
from supernet.schema import check_config, section, setting
from supernet.schema.train import BLEU_TOKENIZERS, MAX_SEED


def _device(value: Any) -> bool:
    name = str(value).lower()
    return name in {"cpu", "cuda", "gpu"} or (name.startswith("cuda:") and name[5:].isdigit())


DEVICE = "cpu, cuda or cuda:<index>"


@dataclass
class TranslationEvaluation:
    """`evaluation.translation`: how a translation supernet's subnets are scored."""

    beam_size: int = setting("beam width (1: greedy)", ge=1)
    len_penalty: float = setting("beam-search length penalty")
    max_len_a: float = setting("longest output = a × source length + b", ge=0)
    max_len_b: int = setting("longest output = a × source length + b", ge=0)
    max_sentences: int | None = setting("score only the first N sentences (null: all)", ge=1)
    tokenize: str = setting("sacreBLEU tokenizer", choices=BLEU_TOKENIZERS)
    compound_split: bool = setting("split hyphenated compounds before BLEU")


@dataclass
class Evaluation:
    """`evaluation`: how validations score a subnet."""

    device: str = setting("where subnets are validated", check=_device, expect=DEVICE)
    max_val_batches: int | None = setting("cap on validation batches (null: all)", ge=1)
    max_val_images: int | None = setting("only the first N validation images (null: all)", ge=1)
    translation: TranslationEvaluation = section(TranslationEvaluation, "translation scoring")


@dataclass
class Ray:
    """`ray`: validations on Ray workers (with workers > 0)."""

    address: str | None = setting("cluster to join (null: a local one)")
    cpus_per_worker: int | None = setting("CPUs (and torch threads) per worker", ge=1)
    gpus_per_worker: float = setting("GPUs per worker (fractions share one)", ge=0)
    max_retries: int = setting("times a subnet whose worker died is measured again", ge=0)
    runtime_env: dict[str, Any] | None = setting("Ray runtime environment of the workers")
    connect_timeout: float = setting("seconds a remote head node has to answer", gt=0)
    start_timeout: float = setting("seconds the workers have to start", gt=0)
    task_timeout: float | None = setting("seconds per validation (null: no limit)", gt=0)


@dataclass
class Wandb:
    """`wandb`: the search's W&B run."""

    project: str = setting("W&B project")
    mode: str | None = setting("online, offline or disabled (null: online with an account)",
                               choices=("online", "offline", "disabled", None))
    enabled: bool = setting("log the search to W&B")


@dataclass
class SearchConfig:
    """`search.yaml`'s own keys."""

    task_name: str = setting("name of the run directory's parent (search)")
    experiment_name: str = setting("W&B group of the run")
    seed: int = setting("seed of the strategy", ge=0, le=MAX_SEED)
    threads: int | None = setting("CPU threads of torch (null: torch's default)", ge=1)
    tags: list[str] = setting("W&B tags of the run")
    ckpt_path: str | None = setting("checkpoint to search (null: the newest one)")
    ckpt_trusted: bool = setting("load a checkpoint that holds Python objects (runs its code)")
    budget: int = setting("validations the strategy may spend", ge=1)
    objectives: list[str | None] = setting("metrics to optimise (quality: the checkpoint's own)")
    constraints: dict[str, float | None] = setting("upper bounds on costs", gt=0)
    relative_constraints: dict[str, float | None] = setting(
        "upper bounds as fractions of the largest subnet's cost", gt=0, le=1)
    reference: dict[str, float] = setting("hypervolume reference point per objective")
    store_path: str | None = setting("measurement store (null: beside the checkpoint)")
    store_shared: bool = setting("store_path is a cache shared by many checkpoints")
    store_lease_seconds: float = setting("seconds before a stalled run's claims are taken over",
                                         gt=0)
    evaluation: Evaluation = section(Evaluation, "how validations score a subnet")
    workers: int = setting("Ray workers that validate in parallel (0: this process)", ge=0)
    ray: Ray = section(Ray, "the Ray cluster")
    wandb: Wandb = section(Wandb, "the W&B run")


@dataclass
class LINAS:
    """`strategy=linas`."""

    initial: int = setting("random archs validated before the first predictor", ge=2)
    population: int = setting("NSGA-II population = validations per iteration", ge=2)
    generations: int = setting("NSGA-II generations on the predictors per iteration", ge=1)
    batch_size: int | None = setting("validations per predictor round (null: population)", ge=1)
    predict_costs: Any = setting("predict costs (auto: measured ones; MACs/params exactly)",
                                 choices=(True, False, "auto"))
    folds: int = setting("cross-validation folds of the predictors", ge=2)
    ridge_alphas: list[float] = setting("Ridge regularisation grid", gt=0)
    svr_cs: list[float] = setting("SVR C grid", gt=0)
    max_tries: int = setting("rejected samples in a row before giving up", ge=1)
    blas_threads: int | None = setting("BLAS threads during a step (null: default)", ge=1)
    exclude_validated: bool = setting("never re-propose a validated arch")


@dataclass
class LayerNAS:
    """`strategy=layernas`."""

    buckets: int | None = setting("cost buckets H (null: the largest that fits)", ge=1)
    top_per_bucket: int = setting("candidates kept per bucket", ge=1)
    cost_metric: str | None = setting("bucketed cost (null: the first constraint's)")
    fill: str = setting("option of the nodes not searched yet", choices=FILLS)
    metric: str | None = setting("quality metric (null: the first quality objective)")
    max_buckets: int = setting("upper bound of the automatic H", ge=1)
    bucket_jitter: bool = setting("shift each layer's bucket grid randomly")
    bucket_range: str = setting("range the buckets divide", choices=BUCKET_RANGES)


@dataclass
class MathNAS:
    """`strategy=mathnas`."""

    block_table: str | None = setting("measured block table to solve without measuring")
    flops_correction: bool = setting("the F̄ / F(N) factor of the prediction")
    budgets: list[float] | None = setting("values of the first constraint to sweep", gt=0)
    context: str = setting("how block drops are measured", choices=tuple(CONTEXTS))
    contexts_fraction: float = setting("averaged: fraction of contexts drawn", gt=0, le=1)
    num_contexts: int | None = setting("averaged: exact number of contexts", ge=1)
    top_k: int = setting("networks validated per constraint setting", ge=1)
    flops_metric: str = setting("cost metric that plays FLOPs")
    metric: str | None = setting("quality metric (null: the first quality objective)")
    quality_sample: int = setting("random subnets that score the predictor", ge=0)
    time_limit: float | None = setting("seconds per MILP (null: no limit)", gt=0)
    engine: str = setting("solver", choices=ENGINES)
    repair_costs: int = setting("solves calibrating predicted bounds (0: off)", ge=0)
    save_table: str | None = setting("where the measured block table is written")
    flops_samples: int = setting("archs drawn to estimate the mean FLOPs", ge=1)
    refit_rounds: int = setting("rounds the top_k validations are split into", ge=1)
    refit_ridge: float = setting("weight pulling refitted drops to the measured", gt=0)
    enumerate_limit: int = setting("rank every network of a space this small", ge=0)
    clip_drops: bool = setting("predict with negative drops set to zero")


@dataclass
class NSGA2:
    """`strategy=nsga2`."""

    population: int = setting("population = validations per generation", ge=2)


@dataclass
class Evolution:
    """`strategy=evolution`."""

    population: int = setting("archs alive at once", ge=2)
    tournament: int = setting("archs drawn per tournament (≤ population)", ge=1)
    batch_size: int = setting("children validated together", ge=1)
    max_tries: int = setting("mutations tried per child", ge=1)


@dataclass
class RandomSearch:
    """`strategy=random`."""

    batch_size: int = setting("archs validated per evaluator call", ge=1)
    max_tries: int = setting("samples per wanted arch before giving up", ge=1)


@dataclass
class LatencyMeter:
    """`hardware.meter`: how a network is timed."""

    device: str = setting("where networks are timed", check=_device, expect=DEVICE)
    batch_size: int = setting("inputs per timed run", ge=1)
    warmup: int = setting("untimed runs first", ge=0)
    repeats: int = setting("timed runs", ge=1)
    trim: float = setting("fraction dropped at each end of the sorted times", ge=0, lt=0.5)
    threads: int = setting("torch threads while timing", ge=1)
    clock: str = setting("wall (latency) or process (CPU time)", choices=tuple(CLOCKS))
    mode: str = setting("eager (Python calls) or cuda_graph (captured once, replays timed)",
                        choices=("eager", "cuda_graph"))


@dataclass
class AnalyticCost:
    """`hardware=flops` / `params`."""

    metrics: list[str] = setting("analytic metrics", choices=("macs", "params"))
    objective: str | None = setting("the cost objective (null: the first metric)")


@dataclass
class MeasuredLatencyCost:
    """`hardware=cpu` / `gpu` / `cpu_time`."""

    objective: str | None = setting("the cost objective (null: what the meter measures)")


@dataclass
class OnnxRuntimeCost(MeasuredLatencyCost):
    """`hardware=onnxruntime`."""

    opset: int = setting("ONNX opset of the exported graphs", ge=7)


@dataclass
class LatencyTableCost(MeasuredLatencyCost):
    """`hardware=cpu_lut` / `gpu_lut`."""

    path: str | None = setting("YAML/JSON file the table is read from and written to")
    offset: bool = setting("add the measured per-network offset")
    passes: int | None = setting("interleaved passes (null: one run each per pass)", ge=1)
    pool: int = setting("random subnets the measured networks are chosen from", ge=0)
    prebuild: bool = setting("measure the whole table when the search starts")
    channels_last: bool = setting("NHWC inputs and weights")
    seed: int = setting("seed of the pool and pass order", ge=0, le=MAX_SEED)
    progress: bool = setting("a progress bar while the table is built")


@dataclass
class DeviceLatencyCost:
    """`hardware=device`."""

    path: str | None = setting("the kit's latency table, timed on the device")
    device: str | None = setting("the device's name in reports")
    objective: str = setting("the name of the latency metric")
    column: str = setting("the table's column of measured milliseconds")
    min_rows: int = setting("fewest measured subnets the predictor is fitted on", ge=3)
    folds: int = setting("cross-validation folds", ge=2)
    seed: int = setting("seed of the folds", ge=0, le=MAX_SEED)
    features: str = setting("what the predictor sees", choices=DEVICE_FEATURES)


@dataclass
class Benchmark:
    """`space=nats_sss` / `nas_bench_201`: a tabular benchmark."""

    name: str = setting("which table")
    path: str | None = setting("table file or folder (null: the bundled table)")
    dataset: str = setting("dataset of the table")
    validation: str = setting("NAS-Bench-201: which accuracy is searched")
    canonical: bool = setting("NAS-Bench-201: one arch per isomorphism class")
    source: str = setting("format of path")
    hp: str | None = setting("NATS-Bench training schedule")
    cache: str | None = setting("NATS-Bench: compact CSV written after the first read")


@dataclass
class ColumnTable:
    """`space=table`: any table with one row per architecture."""

    path: str | None = setting("the CSV or Parquet file")
    decisions: list[str] = setting("decision columns, in layer order")
    quality: str | None = setting("the column searched on")
    report_quality: str | None = setting("a column reported beside it")
    quality_sense: str = setting("max: larger quality is better; min: smaller",
                                 choices=("max", "min"))
    costs: dict[str, str] | None = setting("cost name → column")
    order: dict[str, list[Any]] | None = setting("a column's values small → large")
    name: str | None = setting("the space's name (null: the file's)")


@dataclass
class Published:
    """`pretrained=`: a published supernet searched instead of a checkpoint."""

    name: str = setting("the option name")
    format: str = setting("the publisher's file layout")
    url: str = setting("where the publisher serves the file")
    data: str = setting("the data config the weights belong with")
    sha256: str | None = setting("the file's digest (null: not checked)")
    path: str | None = setting("a local copy of the file (no download)")
    cache_dir: str | None = setting("where downloads are kept (null: the user cache)")
    trusted: bool = setting("load a file holding Python objects (runs code from it)")


SEARCH_OPTIONS: dict[str, type] = {
    "search.strategies.linas.LINAS": LINAS,
    "search.strategies.layernas.LayerNAS": LayerNAS,
    "search.strategies.mathnas.MathNAS": MathNAS,
    "search.strategies.nsga2.NSGA2Search": NSGA2,
    "search.strategies.evolution.RegularizedEvolution": Evolution,
    "search.strategies.random.RandomSearch": RandomSearch,
    "search.hardware.meter.LatencyMeter": LatencyMeter,
    "search.hardware.costs.AnalyticCost": AnalyticCost,
    "search.hardware.costs.MeasuredLatencyCost": MeasuredLatencyCost,
    "search.hardware.lookup_table.LatencyTableCost": LatencyTableCost,
    "search.hardware.onnx_runtime.OnnxRuntimeCost": OnnxRuntimeCost,
    "search.hardware.device.DeviceLatencyCost": DeviceLatencyCost,
    "search.benchmarks.loader.load_benchmark": Benchmark,
    "search.benchmarks.column_table.load_column_table": ColumnTable,
    "supernet.pretrained.Published": Published,
}


def validate_search(cfg: DictConfig) -> None:
    """Refuse a search config that cannot run: bad values, no GPU, unwritable or missing files.

    Only the groups a search uses are checked (the training groups of `search.yaml` are there
    for the supernet config's interpolations).
    """
    benchmark = cfg.get("space") is not None  # a table: no hardware, no evaluator
    groups = ("strategy", "space") if benchmark else ("strategy", "hardware", "pretrained")
    check_config(cfg, SearchConfig, groups, SEARCH_OPTIONS)
    if not benchmark:
        device = cfg.evaluation.get("device", "cpu")
        check_cuda("evaluation.device", device, "evaluation.device=cpu")
    check_writable_dir(cfg.paths.output_dir, "paths.output_dir")
    table = cfg.strategy.get("block_table")
    if table and not Path(table).is_file():
        raise ConfigError(f"strategy.block_table={table}: no such file; give the path of a "
                          "block table a MathNAS search wrote (block_table.yaml in its run)")
    if cfg.strategy.get("save_table"):
        check_writable_file(cfg.strategy.save_table, "strategy.save_table")


def reference_markdown() -> str:
    """Every checked key of `train.yaml`, `search.yaml` and their options as markdown tables
    (the reference in docs/guides/errors.md: `python -m search.schema`)."""
    from supernet.schema import keys_help
    from supernet.schema.train import TRAIN_OPTIONS, TrainConfig

    out: list[str] = []
    for title, schema, prefix in [("`train.yaml`", TrainConfig, ""),
                                  *_options(TRAIN_OPTIONS), ("`search.yaml`", SearchConfig, ""),
                                  *_options(SEARCH_OPTIONS)]:  # fmt: skip
        out += [f"#### {title}", "", "| key | accepts | meaning |", "| --- | --- | --- |"]
        out += [f"| `{prefix}{k}` | {what} | {help} |" for k, what, help in keys_help(schema)]
        out.append("")
    return "\n".join(out)


def _options(options: dict[str, type]) -> list[tuple[str, type, str]]:
    """(title, schema, key prefix) of each option schema, once per schema."""
    seen: dict[type, str] = {}
    for target, schema in options.items():
        seen.setdefault(schema, target)
    rows = []
    for schema, target in seen.items():
        title = (schema.__doc__ or target).strip().splitlines()[0].rstrip(".")
        group = title.split("`")[1].split("=")[0].split(" ")[0] if "`" in title else ""
        prefix = f"{group}." if group else ""
        rows.append((f"{title} ({target.rsplit('.', 1)[-1]})", schema, prefix))
    return rows


if __name__ == "__main__":
    print(reference_markdown())
