"""Deployable files of a static subnet: the PyTorch module (`.pt`) and an ONNX graph (`.onnx`).

The ONNX graph has a dynamic batch axis (and, for token inputs, a dynamic sequence axis), so
one file serves any batch size; onnxruntime reproduces the module's outputs within float
rounding. What is exported is the module as given: callers pass the model exactly as it was
measured (for image subnets: after BatchNorm recalibration).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from supernet.errors import NASError

log = logging.getLogger(__name__)
ONNX_OPSET = 17


class ExportError(NASError):
    """A model that cannot be written as asked (e.g. onnx is not installed)."""


def save_module(model: nn.Module, path: str | Path) -> Path:
    """`torch.save` of the whole module; load it with `torch.load(path, weights_only=False)`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model, path)
    return path


def to_onnx(
    model: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    path: str | Path,
    opset: int = ONNX_OPSET,
    dynamic_batch: bool = True,
    names: tuple[Sequence[str], Sequence[str]] | None = None,
    dynamic_axes: dict[str, dict[int, str]] | None = None,
) -> Path:
    """Write `model` (eval mode) as an ONNX graph traced on `example_inputs`.

    Inputs are named `input0`, `input1`, ...; the output `output`. Axis 0 of every input and
    of the output is dynamic when `dynamic_batch`; axis 1 of integer (token) inputs is
    dynamic too, so a translation model takes sentences of any length. A graph of several
    outputs passes its own `names` (inputs, outputs) and `dynamic_axes` instead.
    """
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError:
        raise ExportError(
            "ONNX export needs the onnx package: pip install onnx onnxruntime"
        ) from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    inputs = tuple(x.contiguous() for x in example_inputs)
    dynamic: dict[str, dict[int, str]] = {}
    if names is not None:
        input_names, output_names = list(names[0]), list(names[1])
        dynamic = dict(dynamic_axes or {})
    else:
        input_names = [f"input{i}" for i in range(len(inputs))]
        output_names = ["output"]
    if dynamic_batch and names is None:
        for name, x in zip(input_names, inputs, strict=True):
            axes = {0: "batch"}
            if not torch.is_floating_point(x) and x.ndim >= 2:
                axes[1] = f"{name}_length"
            dynamic[name] = axes
        dynamic["output"] = {0: "batch"}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python control flow
            partial = path.with_name(path.name + ".partial")
            torch.onnx.export(
                model, inputs, str(partial), input_names=input_names, output_names=output_names,
                dynamic_axes=dynamic or None, opset_version=opset, dynamo=False,
            )
        partial.replace(path)  # renamed when whole: no half-written file on failure
    finally:
        model.train(was_training)
    return path
