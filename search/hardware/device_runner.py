"""Time every ONNX model of this kit with ONNX Runtime and write the latencies into latency.csv.

Run it on the device the search should target (needs Python 3, numpy and onnxruntime only):

    python measure_onnxruntime.py [--threads 1] [--warmup 10] [--repeats 50] [--trim 0.1]
                                  [--provider CPUExecutionProvider]

Each model runs `warmup` times untimed, then `repeats` times timed; the latency is the mean of
the times left after dropping the `trim` fraction at each end, in milliseconds, measured with
the same batch and input size the kit exported. The CSV is rewritten after every model, and
rows that already hold a latency are kept: a run that was stopped goes on where it stopped.
Timing with another runtime (TensorRT, TFLite, Core ML) works as well: fill the `latency_ms`
column any way you like; the search reads only that column and the decisions.

This file is copied into the kit by `python -m search.device_kit`; it imports nothing of
the framework, so the kit's folder is all the device needs.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TABLE = "latency.csv"
COLUMN = "latency_ms"


def _session(path: Path, threads: int, provider: str):  # noqa: ANN202 - onnxruntime's type
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=[provider])


def time_model(path: Path, threads: int, warmup: int, repeats: int, trim: float,
               provider: str) -> float:
    """Trimmed-mean milliseconds of one `session.run` of the model on a fixed random input."""
    import numpy as np

    session = _session(path, threads, provider)
    feed = {}
    for spec in session.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in spec.shape]
        feed[spec.name] = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    times.sort()
    cut = int(trim * len(times))
    kept = times[cut : len(times) - cut] or times
    return 1000.0 * sum(kept) / len(kept)


def _write(path: Path, fields: list[str], rows: list[dict[str, str]]) -> None:
    partial = path.with_suffix(".csv.partial")
    with partial.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, path)  # a stopped run never leaves half a table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kit", default=str(HERE), help="the kit folder (default: here)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads")
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs per model")
    parser.add_argument("--repeats", type=int, default=50, help="timed runs per model")
    parser.add_argument("--trim", type=float, default=0.1, help="fraction dropped at each end")
    parser.add_argument("--provider", default="CPUExecutionProvider",
                        help="ONNX Runtime execution provider")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0 or not 0 <= args.trim < 0.5 or args.threads < 1:
        parser.error("need repeats >= 1, warmup >= 0, threads >= 1 and 0 <= trim < 0.5")
    try:
        import numpy  # noqa: F401
        import onnxruntime
    except ImportError as err:
        print(f"error: timing the kit needs numpy and onnxruntime ({err}): pip install numpy "
              "onnxruntime", file=sys.stderr)
        return 2
    available = onnxruntime.get_available_providers()
    if args.provider not in available:
        print(f"error: --provider {args.provider} is not available here; this onnxruntime has "
              f"{', '.join(available)}", file=sys.stderr)
        return 2
    kit = Path(args.kit)
    table = kit / TABLE
    if not table.is_file():
        parser.error(f"no {TABLE} in {kit}: point --kit at the folder the kit was written to")
    with table.open(newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = list(reader.fieldnames or []), list(reader)
    if "arch_id" not in fields or COLUMN not in fields:
        parser.error(f"{table} needs the columns arch_id and {COLUMN}")
    todo = [row for row in rows if not row[COLUMN].strip()]
    print(f"{len(rows) - len(todo)} of {len(rows)} models timed already; timing {len(todo)}",
          flush=True)
    for i, row in enumerate(todo, 1):
        model = kit / "models" / f"{row['arch_id']}.onnx"
        if not model.is_file():
            print(f"error: {model} is missing", file=sys.stderr)
            return 2
        ms = time_model(model, args.threads, args.warmup, args.repeats, args.trim,
                        args.provider)
        row[COLUMN] = f"{ms:.6g}"
        _write(table, fields, rows)
        print(f"[{i}/{len(todo)}] {row['arch_id']}: {ms:.3f} ms", flush=True)
    print(f"latencies written to {table}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
