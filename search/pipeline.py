"""`run(cfg)`: checkpoint (or tabular benchmark) → problem → strategy → report.

Every validation and every cost goes through the store the moment it is made, so a rerun, a
resumed run or another strategy on the same checkpoint measures nothing twice.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from search.benchmarks import TableOracle, TabularBenchmark, regret_table
from search.evaluation import build_evaluator, distributed, evaluator_for
from search.export import export_best
from search.hardware.lookup_table import LatencyTableCost
from search.mathnas.table import BlockTable
from search.mathnas.table_only import report_solution, solve_table_file, table_constraints
from search.pretrained_setup import pretrained_source
from search.problem import Evaluation, Problem, ProblemError, metric_sense
from search.report import write_report
from search.results import SearchResult
from search.schema import validate_search
from search.store import Store, checkpoint_fingerprint
from search.store.leases import DEFAULT_LEASE_SECONDS
from search.tracking import WandbProgress, log_result, wandb_run
from supernet.checkpoint import load_supernet, read_record
from supernet.errors import CheckpointError
from supernet.protocol import Supernet
from supernet.runtime import set_threads, wandb_group
from supernet.space import SearchSpace

log = logging.getLogger(__name__)


@dataclass
class Setup:
    """What a search runs on: the problem's ingredients plus what the report needs."""

    space: SearchSpace
    validate: Any
    cost: Any
    source: str  # checkpoint path or benchmark description
    supernet: Supernet | None = None
    scope: Any = None  # the store scope of validations (counts reused vs measured)
    close: Callable[[], None] | None = None  # releases workers (Ray) when the search ends
    metrics: tuple[str, ...] = ("accuracy",)  # quality metrics the validations give, main first
    task: str = "tabular benchmark"  # what the validations score, for error messages
    reference: dict[str, float] = field(default_factory=dict)  # default hypervolume reference
    oracle: TableOracle | None = None  # a table's brute-force answers: checks and regret
    evaluator: Callable[[], Any] | None = None  # the local evaluator (exports the best subnets)
    analytic_cost: Any = None  # the free part of `cost` when `cost` also measures latency
    cost_objective: str | None = None  # the cost model's own objective (hardware.objective)


def find_latest_checkpoint(log_dir: str | Path, supernet_class: str) -> Path:
    """The newest `last.ckpt` under `log_dir` whose supernet class is `supernet_class`."""
    candidates = sorted(
        Path(log_dir).glob("**/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for path in candidates:
        try:
            record = read_record(path)
        except CheckpointError:
            continue
        if record["supernet_class"] == supernet_class:
            return path
    raise CheckpointError(
        f"no checkpoint of {supernet_class.rsplit('.', 1)[-1]} under {Path(log_dir).resolve()}; "
        "train one first (python train.py) or pass ckpt_path=/path/to/last.ckpt"
    )


def class_path(target: str) -> str:
    """The defining module path of a `_target_` (re-exports resolve to one name)."""
    cls = get_class(target)
    return f"{cls.__module__}.{cls.__qualname__}"


def open_store(
    cfg: DictConfig, ckpt: Path, fingerprint: str, store_dir: Path | None = None
) -> Store:
    """The measurement store of a checkpoint.

    Default: `measurements/<fingerprint>.sqlite` beside the checkpoint's run (or in
    `store_dir`), bound to it. An
    explicit `store_path` is bound too (and refuses another checkpoint's measurements) unless
    `store_shared=true` makes it a cache shared by many checkpoints, keyed by each. Runs
    on one store share their work: what one measures, the others wait for and reuse.
    """
    if cfg.get("store_path"):
        path = Path(cfg.store_path)
    else:
        folder = store_dir or ckpt.resolve().parent.parent / "measurements"
        path = folder / f"{fingerprint[:16]}.sqlite"
    store = Store(path, checkpoint=None if cfg.get("store_shared") else fingerprint,
                  lease_seconds=cfg.get("store_lease_seconds", DEFAULT_LEASE_SECONDS))
    log.info("measurement store: %s", path)
    return store


def _checkpoint_source(cfg: DictConfig) -> tuple[Supernet, dict[str, Any], Path]:
    """The supernet of `ckpt_path` (default: the newest of `supernet=`), its record, its path."""
    supernet_class = class_path(cfg.supernet._target_)
    ckpt = cfg.get("ckpt_path") or find_latest_checkpoint(cfg.paths.log_dir, supernet_class)
    if not cfg.get("ckpt_path"):
        log.info("using the latest %s checkpoint: %s", supernet_class.rsplit(".", 1)[-1], ckpt)
    supernet, record = load_supernet(ckpt, trusted=bool(cfg.get("ckpt_trusted")))
    if record["supernet_class"] != supernet_class:
        raise CheckpointError(
            f"checkpoint {ckpt} holds a {record['space']!r} supernet "
            f"({record['supernet_class']}), not {supernet_class}; pass the matching supernet= "
            "or another ckpt_path"
        )
    return supernet, record, Path(ckpt)


def _supernet_setup(cfg: DictConfig, cost_model: Any) -> Setup:
    store_dir = None
    if cfg.get("pretrained"):  # a published supernet: weights from its file, data from cfg
        source = pretrained_source(cfg)
        supernet, record, ckpt = source.supernet, source.record, source.weights
        store_dir = source.store_dir
    else:
        supernet, record, ckpt = _checkpoint_source(cfg)
    evaluator_cls = evaluator_for(record)
    metrics, task = tuple(evaluator_cls.metrics), str(evaluator_cls.task)
    resolve_objectives(cfg.objectives, metrics, task, cfg.get("reference"),
                       cost_model.objective)  # before any data
    options = evaluator_cls.options(cfg.get("evaluation") or {}, record)
    fingerprint = checkpoint_fingerprint(ckpt)
    store = open_store(cfg, Path(ckpt), fingerprint, store_dir)
    if cfg.get("workers"):  # validations on Ray workers; latency stays here, never concurrent
        ray_evaluator = distributed.from_config(cfg, supernet, record)
        scope = store.scope(supernet.space.name, fingerprint, ray_evaluator.settings())
        cost = ray_evaluator.exclusive(
            cost_model.bind(supernet, store=store, checkpoint=fingerprint)
        )
        # the whole batch at once: the workers measure it in parallel, each result is stored
        # the moment it and all before it are known
        validate = scope.memoize(ray_evaluator, batch_size=None)

        def local_evaluator() -> Any:  # built only to export the best subnets
            return build_evaluator(evaluator_cls, supernet, record["data_config"], options)

        return Setup(supernet.space, validate, cost, str(ckpt), supernet,
                     scope, close=ray_evaluator.close, metrics=metrics, task=task,
                     evaluator=local_evaluator, analytic_cost=getattr(cost_model, "analytic", None),
                     cost_objective=cost_model.objective)
    evaluator = build_evaluator(evaluator_cls, supernet, record["data_config"], options)
    scope = store.scope(supernet.space.name, fingerprint, evaluator.settings())
    cost = cost_model.bind(supernet, store=store, checkpoint=fingerprint)
    return Setup(supernet.space, scope.memoize(evaluator), cost, str(ckpt), supernet, scope,
                 metrics=metrics, task=task, evaluator=lambda: evaluator,
                 analytic_cost=getattr(cost_model, "analytic", None),
                 cost_objective=cost_model.objective)


def _benchmark_setup(cfg: DictConfig) -> Setup:
    """A tabular benchmark: validations are look-ups; reports also carry test accuracy and,
    from the table's brute-force answers, each constraint's regret."""
    bench = instantiate(cfg.space)
    if not isinstance(bench, TabularBenchmark):  # any table (space=table)
        return Setup(bench.space, bench.validate, bench.cost, f"table {bench.source}",
                     metrics=(bench.quality_metric,), reference=bench.reference(),
                     oracle=bench.oracle())

    def validate(archs: Any) -> list[dict[str, float]]:
        rows = bench.validate(archs)
        if bench.has_test_accuracy:
            for row, arch in zip(rows, archs, strict=True):
                row["test_accuracy"] = bench.test_accuracy(arch)
        return rows

    source = f"benchmark {bench.space.name} ({bench.dataset})"
    return Setup(bench.space, validate, bench.cost, source, oracle=bench.oracle())


def build_problem(cfg: DictConfig, setup: Setup) -> Problem:
    constraints = {k: v for k, v in (cfg.get("constraints") or {}).items() if v is not None}
    relative = {k: v for k, v in (cfg.get("relative_constraints") or {}).items() if v is not None}
    from_relative: dict[str, float] = {}  # constraints set by a fraction: the largest's cost
    if relative:
        largest = setup.cost(setup.space.largest())
        for name, fraction in relative.items():
            if name not in largest:
                raise ProblemError(f"relative constraint on {name!r}, which the cost model "
                                   f"does not give; it gives {sorted(largest)}")
            bound = float(fraction) * float(largest[name])
            if bound <= constraints.get(name, bound):
                constraints[name], from_relative[name] = bound, float(largest[name])
            log.info("constraint %s ≤ %g (%.0f%% of the largest subnet)", name, bound,
                     100 * fraction)
    if setup.oracle is not None:  # the table's own message: its costs, its cheapest row
        setup.oracle.check_constraints(constraints, from_relative)
    reference = {**setup.reference, **dict(cfg.get("reference") or {})}
    objectives = resolve_objectives(cfg.objectives, setup.metrics, setup.task, reference,
                                    setup.cost_objective)
    problem = Problem(
        space=setup.space,
        objectives=objectives,
        constraints=constraints,
        validate=setup.validate,
        cost=setup.cost,
        budget=int(cfg.budget),
        reference=reference,
        analytic_cost=setup.analytic_cost,
    )
    if setup.oracle is not None:  # a table knows its cheapest row (not always the smallest)
        setup.oracle.check(problem)
    else:
        check_constraints(problem, from_relative)
    return problem


QUALITY = ("accuracy", "bleu", "loss")
MAIN_QUALITY = "quality"  # objectives placeholder: the main metric of whatever is searched


def resolve_objectives(
    objectives: Any, measured: tuple[str, ...], task: str, reference: Any = None,
    cost_objective: str | None = None,
) -> list[str]:
    """`objectives` with `quality` replaced by the validations' main metric (accuracy, BLEU)
    and an unset one (`hardware.objective: null`) by the cost model's own objective.

    A quality metric the validations do not give (accuracy of a translation supernet) is one
    clear error naming the metrics they do give; names that are no metric at all are left to
    `Problem`, which lists the known ones.
    """
    resolved = [measured[0] if name == MAIN_QUALITY else str(cost_objective) if name is None
                else str(name) for name in objectives]
    for name in resolved:
        if name in QUALITY and name not in measured:
            raise ProblemError(
                f"objective {name!r} is not measured here: {task} validations give "
                f"{', '.join(measured)}. Use objectives=[{measured[0]},...] or "
                f"objectives=[{MAIN_QUALITY},...] (the main metric of what is searched)"
            )
        if name in QUALITY and not metric_sense(name)[0] and name not in (reference or {}):
            raise ProblemError(
                f"objective {name!r} is minimised and has no natural hypervolume reference; "
                f"set +reference.{name}=<a value no subnet of interest exceeds>"
            )
    return resolved


def check_constraints(problem: Problem, from_relative: dict[str, float] | None = None) -> None:
    """Fail early on objectives nobody measures and on constraints no subnet can meet.

    `from_relative` maps a constraint set by `relative_constraints` to the largest subnet's
    cost, so that the message names the fraction to raise."""
    cheapest = problem.cost(problem.space.smallest())
    for name in problem.objectives:
        if name not in cheapest and name not in QUALITY:
            raise ProblemError(
                f"objective {name!r} is not measured here (costs: {sorted(cheapest)}); "
                "choose another hardware= or objectives=[...]"
            )
    for name, bound in problem.constraints.items():
        if name not in cheapest:
            raise ProblemError(
                f"constraint on {name!r} but the cost model gives only {sorted(cheapest)}; "
                "choose a hardware= that measures it"
            )
        if cheapest[name] > bound:
            largest = (from_relative or {}).get(name)
            fix = (f"Raise constraints.{name} to at least that." if largest is None else
                   f"Raise relative_constraints.{name} to at least "
                   f"{math.ceil(1000 * cheapest[name] / largest) / 1000:g}.")
            raise ProblemError(
                f"constraint {name} ≤ {bound:g} cannot be met: the cheapest subnet "
                f"({problem.space.smallest().arch_id}) has {name} = {cheapest[name]:g}. {fix}"
            )


def solves_table_only(cfg: DictConfig) -> bool:
    """MathNAS given a block table and no checkpoint (nor benchmark) solves the table alone."""
    strategy = cfg.get("strategy") or {}
    return (
        str(strategy.get("_target_", "")).endswith(".MathNAS")
        and bool(strategy.get("block_table"))
        and not cfg.get("ckpt_path")
        and cfg.get("space") is None
    )


def run_table_only(cfg: DictConfig, console: Console, output_dir: Path) -> dict[str, Any]:
    """Solve `strategy.block_table` under the configured constraints, with no supernet."""
    table = BlockTable.load(cfg.strategy.block_table)
    constraints = table_constraints(
        table, cfg.get("constraints") or {}, cfg.get("relative_constraints") or {}
    )
    log.info("solving block table %s alone (no checkpoint given: nothing is validated)",
             cfg.strategy.block_table)
    solution = solve_table_file(
        cfg.strategy.block_table, constraints, bool(cfg.strategy.flops_correction),
        int(cfg.strategy.top_k), cfg.strategy.get("time_limit"), str(cfg.strategy.engine),
    )
    path = report_solution(solution, output_dir, console)
    log.info("solution in %s", path)
    return solution


def run(cfg: DictConfig) -> SearchResult | dict[str, Any]:
    """Run one search as configured and write its report (a block table alone: its solution)."""
    validate_search(cfg)  # values, devices, output directory: before any work
    set_threads(cfg.get("threads"))
    console = Console()
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if solves_table_only(cfg):
        return run_table_only(cfg, console, output_dir)
    cost_model = None
    if cfg.get("space") is None:
        cost_model = instantiate(cfg.hardware)
        cost_model.check_available()
    setup = _benchmark_setup(cfg) if cfg.get("space") else _supernet_setup(cfg, cost_model)
    try:
        return _search(cfg, setup, console, output_dir)
    finally:
        if setup.close is not None:
            setup.close()


def _search(cfg: DictConfig, setup: Setup, console: Console, output_dir: Path) -> SearchResult:
    problem = build_problem(cfg, setup)
    strategy = instantiate(cfg.strategy)
    rng = np.random.default_rng(cfg.seed)
    config = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))
    log.info("search %s on %s: budget %d validations, objectives %s, constraints %s",
             strategy.name, setup.source, problem.budget, problem.objectives, problem.constraints)
    describe = getattr(setup.cost, "describe", None)
    costs = describe() if callable(describe) else None  # what is measured: latency = wall time
    if costs is not None:
        log.info("costs: %s", costs)
    started = time.perf_counter()
    with wandb_run(
        project=cfg.wandb.project, group=wandb_group(cfg.experiment_name), job_type="search",
        name=f"{strategy.name}-seed{cfg.seed}", config=config, tags=list(cfg.tags),
        mode=cfg.wandb.mode, save_dir=output_dir, enabled=cfg.wandb.enabled,
    ) as wb, _progress(problem, console, strategy.name):
        if wb is not None:
            problem.callbacks.append(WandbProgress(wb))
        extras = strategy.run(problem, rng) or {}
        result = SearchResult.from_problem(problem, strategy.name, int(cfg.seed), extras)
        facts: dict[str, Any] = {"source": setup.source, "seconds": time.perf_counter() - started}
        if costs is not None:
            facts["costs"] = costs
        if setup.scope is not None:
            facts.update(measured=setup.scope.misses, reused_from_store=setup.scope.hits)
            log.info("validations measured now: %d, reused from the store: %d",
                     setup.scope.misses, setup.scope.hits)
        table = _latency_table(setup.cost)
        if table is not None:
            facts["latency_table"] = {"entries": len(table.table or ()),
                                      "measured": table.measured, "reused": table.reused}
            log.info("latency-table entries measured now: %d, reused from the store: %d",
                     table.measured, table.reused)
        regret = setup.oracle.regret(result) if setup.oracle is not None else None
        if regret is not None:
            facts["regret"] = regret
        files = write_report(result, output_dir, extra_summary=facts, console=console)
        if regret is not None and setup.oracle is not None:
            console.print(regret_table(regret, setup.oracle.quality_metric,
                                       setup.oracle.report_metric))
        best_dir = export_best(result, output_dir / "best", setup.evaluator)
        log_result(wb, result, files, model_path=best_dir if setup.supernet else None)
    (output_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    log.info("results in %s", output_dir)
    return result


def _latency_table(cost: Any) -> LatencyTableCost | None:
    """The lookup-table cost model behind `cost` (unwrapping guards), or None."""
    while cost is not None and not isinstance(cost, LatencyTableCost):
        cost = getattr(cost, "__wrapped__", None)
    return cost


class _progress:
    """A progress bar over the validation budget, fed by the problem's callback."""

    def __init__(self, problem: Problem, console: Console, label: str) -> None:
        self.problem = problem
        self.bar = Progress(
            TextColumn(f"[bold]{label}[/] validations"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console, transient=False,
        )
        self.task = self.bar.add_task("search", total=problem.budget)

    def __enter__(self) -> _progress:
        self.bar.start()
        self.problem.callbacks.append(self._advance)
        return self

    def _advance(self, evaluation: Evaluation) -> None:
        self.bar.update(self.task, completed=evaluation.index + 1)

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()
