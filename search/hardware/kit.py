"""The kit for timing subnets on another device: a sample of subnets as ONNX graphs, the table
their latencies go into and the script that fills it there (`device_runner.py`, copied in as
`measure_onnxruntime.py`). `python -m search.device_kit` writes one; `DeviceLatencyCost`
(`search.hardware.device`) searches on the filled table.

A kit folder holds `models/` (an image subnet: `<arch_id>.onnx`, batch and input size fixed; a
translation subnet: `<arch_id>.encoder.onnx` and `<arch_id>.decoder.onnx`, decoded by beam
search), `latency.csv` (one row per subnet: its id, an empty `latency_ms`, MACs, params and every
decision), `kit.json` (the space, how the graphs were made, what the runner needs) and the
runner. Any other runtime may fill the column instead.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from search.hardware.costs import AnalyticCost, ImageWorkload, input_resolution
from search.hardware.meter import HardwareError
from supernet.export import ONNX_OPSET, to_onnx
from supernet.space import Arch, SearchSpace
from supernet.transformer.core import SubTransformer
from supernet.transformer.latency import TranslationWorkload
from supernet.transformer.onnx_decoding import export_decoding, first_token, vocab_sizes

TABLE = "latency.csv"
KIT_JSON = "kit.json"
RUNNER = "measure_onnxruntime.py"
COLUMN = "latency_ms"
WEIGHTLESS = "random, written on the device while each graph is timed (see `weightless`)"


def sample_archs(space: SearchSpace, count: int, seed: int = 0) -> list[Arch]:
    """The largest and the smallest arch, then distinct random ones up to `count` (fewer when
    the space has fewer)."""
    rng = np.random.default_rng(seed)
    archs = list(dict.fromkeys([space.largest(), space.smallest()]))[:count]
    tries = 0
    while len(archs) < count and tries < 50 * count:
        arch = space.sample(rng)
        tries += 1
        if arch not in archs:
            archs.append(arch)
    return archs


def write_kit(
    supernet: Any,
    out: str | Path,
    count: int = 60,
    seed: int = 0,
    batch_size: int = 1,
    opset: int = ONNX_OPSET,
    checkpoint: str = "",
    weights: bool = False,
) -> Path:
    """Write a kit for timing `count` subnets of `supernet` on another device; returns `out`.

    `checkpoint`: where the supernet came from (a path or a published name), for `kit.json`.
    `weights`: keep the trained weights in the graphs. Without them (the default) a graph holds
    its structure only and the runner writes random weights beside it while it times it: a
    latency does not depend on the values, and a kit of 60 translation subnets shrinks from
    gigabytes to megabytes (`weightless`).

    Refuses a folder that holds a kit already, so measured latencies are never overwritten.
    """
    if count < 2:
        raise HardwareError(f"a device kit needs at least 2 subnets, got count={count}")
    out = Path(out)
    if (out / TABLE).exists():
        raise HardwareError(
            f"{out} holds a device kit already ({out / TABLE}); choose another --out, so that "
            "no measured latency is overwritten"
        )
    space: SearchSpace = supernet.space
    archs = sample_archs(space, count, seed)
    translation = callable(getattr(supernet, "latency_workload", None))
    if translation:
        workload: Any = supernet.latency_workload(batch_size)
    else:
        workload = ImageWorkload(batch_size, input_resolution(supernet), channels_last=False)
    analytic = AnalyticCost().bind(supernet)
    labels = [d.label for d in space.decisions]
    rows = []
    generated: dict[str, int] = {}
    from rich.progress import track

    for arch in track(archs, description=f"exporting {len(archs)} subnets", transient=True):
        model = supernet.export_subnet(arch).eval().cpu()
        graphs: tuple[Path, ...]
        if translation:
            graphs = export_decoding(model, out / "models" / arch.arch_id, batch_size,
                                     workload.src_len, workload.beam_size, opset)
        else:
            x = workload.inputs(model, arch)
            graphs = (to_onnx(model, (x,), out / "models" / f"{arch.arch_id}.onnx", opset,
                              dynamic_batch=False),)
        if not weights:
            generated.update({g.name: weightless(g) for g in graphs})
        cost = analytic(arch)
        rows.append({"arch_id": arch.arch_id, COLUMN: "", "macs": int(cost["macs"]),
                     "params": int(cost["params"]), **{k: arch[k] for k in labels}})
    with (out / TABLE).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["arch_id", COLUMN, "macs", "params", *labels])
        writer.writeheader()
        writer.writerows(rows)
    info = {
        "space": space.name,
        "supernet": f"{type(supernet).__module__}.{type(supernet).__qualname__}",
        "source": checkpoint,
        "subnets": len(archs),
        "seed": seed,
        "input": f"float32, NCHW: {batch_size} x channels x resolution x resolution",
        "batch_size": batch_size,
        "opset": opset,
        "weights": "trained" if weights else WEIGHTLESS,
    }
    if generated:
        info["generated_weights"] = generated  # bytes of each graph's `.weights` file
    if translation:
        info["input"] = (
            f"{batch_size} source sentence(s) of {workload.src_len} tokens, beam search "
            f"(beam {workload.beam_size}, {workload.tgt_len} decoder steps)"
        )
        info["translation"] = translation_spec(model, workload)
    (out / KIT_JSON).write_text(json.dumps(info, indent=2) + "\n")
    shutil.copyfile(Path(__file__).with_name("device_runner.py"), out / RUNNER)
    return out


def weightless(graph: Path) -> int:
    """Leave `graph`'s float tensors of 1 KB or more out: the graph names a `<graph>.weights`
    file for them (ONNX external data, one after another) that the runner writes on the
    device. Returns that file's size in bytes."""
    import onnx
    from onnx import TensorProto, external_data_helper

    model = onnx.load(str(graph))
    location, offset = graph.name + ".weights", 0
    for tensor in _tensors(model.graph):
        if tensor.data_type != TensorProto.FLOAT or len(tensor.raw_data) < 1024:
            continue
        length = len(tensor.raw_data)
        external_data_helper.set_external_data(tensor, location, offset, length)
        tensor.ClearField("raw_data")
        offset += length
    onnx.save_model(model, str(graph))
    return offset


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor an ONNX graph holds: initializers and constants, subgraphs included."""
    import onnx

    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                yield attribute.t
            elif attribute.type == onnx.AttributeProto.GRAPH:
                yield from _tensors(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for sub in attribute.graphs:
                    yield from _tensors(sub)


def translation_spec(model: SubTransformer, workload: TranslationWorkload) -> dict[str, int]:
    """What the kit's runner needs to decode as `workload` does (kit.json `translation`)."""
    return {
        **{k: int(v) for k, v in workload.settings().items() if k != "workload"},
        "seed": workload.seed,
        "src_vocab": vocab_sizes(model)[0],
        "vocab": vocab_sizes(model)[1],
        "pad": model.pad_index,
        "bos": model.bos_index,
        "eos": model.eos_index,
        "first_token": first_token(model),
    }
