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
from supernet.transformer.core import SubTransformer
from supernet.transformer.onnx_decoding import export_decoding

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
    models: dict[str, tuple[Path, list[Path]]] = {}  # arch_id → its stem and files written
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
            if row.arch_id in models:  # one arch best under several constraints: same files
                first_stem, written = models[row.arch_id]
                files = [stem.with_name(f.name.replace(first_stem.name, stem.name, 1))
                         for f in written]  # fmt: skip
                for src, dst in zip(written, files, strict=True):
                    dst.write_bytes(src.read_bytes())
            else:
                files = _write_model(scorer, row.arch, stem, onnx)
                models[row.arch_id] = (stem, files)
            info["files"] = [f.name for f in files]
        stem.with_suffix(".yaml").write_text(yaml.safe_dump(info, sort_keys=False))
    if models:
        log.info("best subnets written to %s (.pt: torch.load(path, weights_only=False); "
                 ".onnx: onnxruntime)", out_dir)
    return out_dir


def _write_model(scorer: Any, arch: Any, stem: Path, onnx: bool) -> list[Path]:
    """The deployable module as `.pt` and, with `onnx`, its graph; a translation model also as
    its encoder and decoder-step graphs (`supernet.transformer.onnx_decoding`), which decode
    incrementally as the module does (the single graph recomputes the whole prefix per
    token)."""
    model = scorer.deployable(arch)
    files = [save_module(model, stem.with_suffix(".pt"))]
    if onnx:
        files.append(to_onnx(model, scorer.example_inputs(arch), stem.with_suffix(".onnx")))
        if isinstance(model, SubTransformer):
            files += export_decoding(model, stem)
    return files
