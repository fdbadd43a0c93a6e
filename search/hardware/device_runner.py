"""Time every ONNX model of this kit with ONNX Runtime and write the latencies into latency.csv.

Run it on the device the search should target (needs Python 3, numpy and onnxruntime only):

    python measure_onnxruntime.py [--threads 1] [--warmup 10] [--repeats 50] [--trim 0.1]
                                  [--provider CPUExecutionProvider]

Each model runs `warmup` times untimed, then `repeats` times timed; the latency is the mean of
the times left after dropping the `trim` fraction at each end, in milliseconds, measured with
the same batch and input size the kit exported. An image model is one graph run on a random
input. A translation model is a beam search (kit.json's `translation`: a random source
sentence of `src_len` tokens, `beam_size` beams, `tgt_len` decoder steps, end-of-sentence
only at the last one) over its two graphs, `<arch_id>.encoder.onnx` once and
`<arch_id>.decoder.onnx` once per step; the beam bookkeeping runs in numpy and is timed too.
The CSV is rewritten after every model, and rows that already hold a latency are kept: a run
that was stopped goes on where it stopped.
A kit is written without the trained weights unless asked (`--weights`): each graph names a
`<graph>.weights` file that this script fills with random values while it times the graph and
removes after (`--keep-weights` keeps them); kit.json lists their sizes. Timing with another
runtime (TensorRT, TFLite, Core ML) works as well: keep the weights, convert the graphs, and
fill the `latency_ms` column any way you like; the search reads only that column and the
decisions.

This file is copied into the kit by `python -m search.device_kit`; it imports nothing of
the framework, so the kit's folder is all the device needs.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
TABLE = "latency.csv"
KIT_JSON = "kit.json"
COLUMN = "latency_ms"


@contextlib.contextmanager
def random_weights(graphs: list[Path], sizes: dict, keep: bool = False) -> Iterator[None]:
    """Write the `<graph>.weights` file of each graph the kit left its weights out of (`sizes`:
    bytes per graph name): random float32 values of a trained network's scale, for the time
    the graphs are timed (a latency does not depend on the values); removed after unless
    `keep`."""
    import numpy as np

    written = []
    try:
        for graph in graphs:
            size = sizes.get(graph.name)
            data = graph.with_name(graph.name + ".weights")
            if size is None or (data.is_file() and data.stat().st_size == size):
                continue
            values = np.random.default_rng(0).standard_normal(size // 4, dtype=np.float32)
            (values * np.float32(0.02)).tofile(data)
            written.append(data)
        yield
    finally:
        if not keep:
            for data in written:
                data.unlink(missing_ok=True)


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
    return _timed(lambda: session.run(None, feed), warmup, repeats, trim)


class Translator:
    """Beam search over a kit's encoder and decoder-step graphs (see kit.json `translation`)."""

    def __init__(self, encoder, decoder, spec: dict) -> None:  # noqa: ANN001 - sessions
        import numpy as np

        self.encoder, self.decoder, self.spec = encoder, decoder, spec
        batch, src_len = int(spec["batch_size"]), int(spec["src_len"])
        src = np.random.default_rng(int(spec.get("seed", 0))).integers(
            4, int(spec["src_vocab"]), (batch, src_len)
        )
        src[:, -1] = int(spec["eos"])
        self.src = src.astype(np.int64)
        self.inputs = {i.name for i in decoder.get_inputs()}
        self.past = [(i.name, [d if isinstance(d, int) else 0 for d in i.shape])
                     for i in decoder.get_inputs() if i.name.startswith("self_")]

    def __call__(self) -> list[list[int]]:
        """The best hypothesis per sentence (tokens, end-of-sentence left out)."""
        import numpy as np

        spec = self.spec
        k, steps, vocab = int(spec["beam_size"]), int(spec["tgt_len"]), int(spec["vocab"])
        batch = self.src.shape[0]
        outs = self.encoder.run(None, {"src_tokens": self.src})
        names = [o.name for o in self.encoder.get_outputs()]
        feed = {name: np.repeat(value, k, axis=0)  # each sentence's beams read its encoding
                for name, value in zip(names, outs) if name in self.inputs}  # noqa: B905
        for name, shape in self.past:
            feed[name] = np.zeros([batch * k, *shape[1:]], dtype=np.float32)
        tokens = np.full((batch * k, 1), int(spec["first_token"]), dtype=np.int64)
        scores = np.zeros((batch, k), dtype=np.float32)
        scores[:, 1:] = -np.inf  # all beams start identical: keep one
        rows = np.arange(batch)[:, None] * k
        banned = [int(spec["pad"]), int(spec["bos"])]
        for step in range(steps):
            feed["prev_tokens"] = tokens
            lprobs, *past = self.decoder.run(None, feed)
            lprobs[:, banned] = -np.inf
            eos = lprobs[:, int(spec["eos"])].copy()
            if step < steps - 1:
                lprobs[:, int(spec["eos"])] = -np.inf
            else:  # the last step ends every hypothesis
                lprobs.fill(-np.inf)
                lprobs[:, int(spec["eos"])] = eos
            candidates = (scores.reshape(-1, 1) + lprobs).reshape(batch, k * vocab)
            top = np.argpartition(-candidates, k - 1, axis=1)[:, :k]
            top_scores = np.take_along_axis(candidates, top, axis=1)
            ranked = np.argsort(-top_scores, axis=1, kind="stable")
            top = np.take_along_axis(top, ranked, axis=1)
            scores = np.take_along_axis(top_scores, ranked, axis=1)
            order = (rows + top // vocab).reshape(-1)
            tokens = np.concatenate([tokens[order], (top % vocab).reshape(-1, 1)], axis=1)
            for (name, _), value in zip(self.past, past):  # noqa: B905 (Python < 3.10 too)
                feed[name] = value[order]
        best = rows[:, 0] + np.argmax(scores, axis=1)
        self.best_scores = scores.max(axis=1)  # summed log-probabilities
        return [tokens[row, 1:-1].tolist() for row in best]


def time_translation(prefix: Path, spec: dict, threads: int, warmup: int, repeats: int,
                     trim: float, provider: str) -> float:
    """Trimmed-mean milliseconds of one beam search (see `Translator`)."""
    translate = Translator(
        _session(prefix.with_name(prefix.name + ".encoder.onnx"), threads, provider),
        _session(prefix.with_name(prefix.name + ".decoder.onnx"), threads, provider),
        spec,
    )
    return _timed(translate, warmup, repeats, trim)


def _timed(run, warmup: int, repeats: int, trim: float) -> float:  # noqa: ANN001 - a callable
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
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
    parser.add_argument("--keep-weights", action="store_true",
                        help="keep the random weights written beside graphs that have none "
                        "(to convert the graphs for another runtime)")
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
    info = json.loads((kit / KIT_JSON).read_text()) if (kit / KIT_JSON).is_file() else {}
    spec = info.get("translation")
    todo = [row for row in rows if not row[COLUMN].strip()]
    print(f"{len(rows) - len(todo)} of {len(rows)} models timed already; timing {len(todo)}",
          flush=True)
    for i, row in enumerate(todo, 1):
        prefix = kit / "models" / row["arch_id"]
        graphs = [prefix.with_name(prefix.name + s) for s in
                  ((".encoder.onnx", ".decoder.onnx") if spec else (".onnx",))]
        missing = [str(g) for g in graphs if not g.is_file()]
        if missing:
            print(f"error: {', '.join(missing)} missing", file=sys.stderr)
            return 2
        timing = (args.threads, args.warmup, args.repeats, args.trim, args.provider)
        with random_weights(graphs, info.get("generated_weights", {}), args.keep_weights):
            ms = (time_translation(prefix, spec, *timing) if spec
                  else time_model(graphs[0], *timing))
        row[COLUMN] = f"{ms:.6g}"
        _write(table, fields, rows)
        print(f"[{i}/{len(todo)}] {row['arch_id']}: {ms:.3f} ms", flush=True)
    print(f"latencies written to {table}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
