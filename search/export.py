"""The best subnet of each constraint as files a user deploys, equal to what was measured.

For every `best_<constraint>` of a result: `best_<c>.yaml` (the arch, its measured metrics and
how they were measured), and, when the search ran on a supernet, `best_<c>.pt` (the static
module) and `best_<c>.onnx` (opset 17, dynamic batch). The module is the evaluator's own
`deployable(arch)`: exported and, for image subnets, BatchNorm-recalibrated exactly as for the
validation that produced the reported accuracy, so re-validating the file gives that accuracy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from search.results import SearchResult
from supernet.export import save_module, to_onnx

log = logging.getLogger(__name__)


def export_best(
    result: SearchResult,
    out_dir: Path,
    evaluator: Callable[[], Any] | None = None,
    onnx: bool = True,
) -> Path:
    """Write each constraint's best subnet into `out_dir`; returns `out_dir`.

    Args:
        result: the search result whose `best` rows are written.
        out_dir: the folder (created).
        evaluator: returns the evaluator that measured the rows (built only when needed);
            None for tabular benchmarks, which have only the YAML description.
        onnx: also write the ONNX graph.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    models: dict[str, tuple[Path, Path | None]] = {}  # arch_id → files already written
    scorer = None
    for name, row in result.best.items():
        if row is None:
            continue
        stem = out_dir / f"best_{name}"
        info: dict[str, Any] = {
            "arch_id": row.arch_id,
            "arch": row.arch.to_dict(),
            "metrics": dict(row.metrics),
        }
        if evaluator is not None:
            scorer = scorer or evaluator()
            info["measured_with"] = dict(scorer.settings())
            pt, graph = stem.with_suffix(".pt"), stem.with_suffix(".onnx") if onnx else None
            if row.arch_id in models:  # one arch best under several constraints: same files
                first_pt, first_graph = models[row.arch_id]
                pt.write_bytes(first_pt.read_bytes())
                if graph is not None and first_graph is not None:
                    graph.write_bytes(first_graph.read_bytes())
            else:
                model = scorer.deployable(row.arch)
                save_module(model, pt)
                if graph is not None:
                    to_onnx(model, scorer.example_inputs(row.arch), graph)
                models[row.arch_id] = (pt, graph)
            info["files"] = [p.name for p in (pt, graph) if p is not None]
        stem.with_suffix(".yaml").write_text(yaml.safe_dump(info, sort_keys=False))
    if models:
        log.info("best subnets written to %s (.pt: torch.load(path, weights_only=False); "
                 ".onnx: onnxruntime)", out_dir)
    return out_dir
