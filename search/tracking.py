"""Weights & Biases logging of a search: progress, the results table, plots, the exported subnet.

W&B is optional at every step: the mode is `online` only when an account is configured
(`WANDB_API_KEY` or `wandb login`), `offline` otherwise, and `disabled` turns it off (the
helpers then receive `None` and do nothing). The run is always finished in a `finally`, so a
failed search in a multirun cannot leave a run open for the next job.

Search metrics use their own step, `search/validations` (declared with `define_metric`), so
the hypervolume curve is logged as `search/hypervolume` against the number of validations
whatever else was logged before.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.report import ReportFiles, best_curves
from search.results import SearchResult
from supernet.runtime import finish_wandb_run, wandb_mode

if TYPE_CHECKING:
    from search.problem import Evaluation

STEP = "search/validations"


@contextmanager
def wandb_run(
    project: str = "nasframework",
    group: str | None = None,
    job_type: str = "search",
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
    tags: Sequence[str] | None = None,
    mode: str | None = None,
    save_dir: str | Path | None = None,
    enabled: bool = True,
) -> Iterator[Any]:
    """A W&B run (or None when disabled) that is finished however the block ends."""
    resolved = wandb_mode(mode)
    if not enabled or resolved == "disabled":
        yield None
        return
    import wandb

    if wandb.run is not None:  # a run left open by an earlier job of this process
        wandb.run.finish()
    run = wandb.init(
        project=project,
        group=group,
        job_type=job_type,
        name=name,
        config=dict(config or {}),
        tags=list(tags or []),
        mode=resolved,  # type: ignore[arg-type]
        dir=str(save_dir) if save_dir is not None else None,
    )
    run.define_metric(STEP)
    run.define_metric("search/*", step_metric=STEP)
    failed = True
    try:
        yield run
        failed = False
    finally:
        finish_wandb_run(run, exit_code=1 if failed else 0)


class WandbProgress:
    """A `Problem` callback: logs each validation's metrics as `search/<metric>` as it comes."""

    def __init__(self, run: Any) -> None:
        self.run = run

    def __call__(self, evaluation: Evaluation) -> None:
        if self.run is None:
            return
        metrics = {f"search/{k}": float(v) for k, v in evaluation.measurement.metrics.items()}
        self.run.log({STEP: evaluation.index + 1, **metrics})


def log_result(
    run: Any,
    result: SearchResult,
    files: ReportFiles | None = None,
    model_path: str | Path | None = None,
    model_metadata: Mapping[str, Any] | None = None,
) -> None:
    """Log the curves, the table of every validated subnet, the plots and the exported model."""
    if run is None:
        return
    import wandb

    curves = best_curves(result)
    for k, hv in enumerate(result.hypervolume):
        row: dict[str, Any] = {
            STEP: k + 1,
            "search/hypervolume": hv,
            "search/hypervolume_normalised": result.hypervolume_normalised[k],
        }
        for key, curve in curves.items():
            if curve[k] == curve[k]:  # not NaN
                row[f"search/best_{result.objectives[0]}_{key}"] = curve[k]
        run.log(row)
    run.log({"search/results": wandb.Table(dataframe=result.to_frame())})
    run.summary["search/validations_total"] = len(result.rows)
    run.summary["search/front_size"] = len(result.pareto)
    if result.hypervolume:
        run.summary["search/hypervolume_final"] = result.hypervolume[-1]
    for key, best in result.best.items():
        if best is not None:
            for metric, value in best.metrics.items():
                run.summary[f"best/{key}/{metric}"] = value
            run.summary[f"best/{key}/arch_id"] = best.arch_id
    if files is not None:
        images = {
            "search/pareto": files.pareto_png,
            "search/hypervolume_plot": files.hypervolume_png,
        }
        run.log({k: wandb.Image(str(p)) for k, p in images.items() if Path(p).exists()})
        table = wandb.Artifact(f"results-{result.strategy}-{result.seed}", type="search-results")
        for path in (files.results_csv, files.summary_json):
            table.add_file(str(path))
        run.log_artifact(table)
    if model_path is not None:
        log_model(run, model_path, metadata=model_metadata)


def log_model(
    run: Any, path: str | Path, name: str | None = None, metadata: Mapping[str, Any] | None = None
) -> None:
    """Upload an exported subnet (a file or a directory) as a W&B model artifact."""
    if run is None:
        return
    import wandb

    path = Path(path)
    artifact = wandb.Artifact(
        name or f"subnet-{path.stem}", type="model", metadata=dict(metadata or {})
    )
    if path.is_dir():
        artifact.add_dir(str(path))
    else:
        artifact.add_file(str(path))
    run.log_artifact(artifact)
