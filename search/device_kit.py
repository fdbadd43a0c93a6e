"""Write a kit for timing a supernet's subnets on another device:
`python -m search.device_kit --ckpt CKPT --out KIT [--count 60]`, or `--pretrained NAME` for
a published supernet's space. An image space needs its architecture only (latency does not
depend on the weights, so nothing is downloaded); a translation space needs the published
file for its vocabulary (downloaded once, or `--pretrained-path FILE`).

The kit holds ONNX graphs of a sample of subnets (an image subnet: one graph; a translation
subnet: its encoder and decoder-step graphs, decoded by beam search), the table their
latencies go into and the script that times them there (see `search.hardware.device`); a
search then reads the filled table with `hardware=device hardware.path=KIT/latency.csv`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from search.hardware.kit import KIT_JSON, RUNNER, TABLE, write_kit
from supernet.checkpoint import load_supernet
from supernet.errors import NASError
from supernet.export import ONNX_OPSET
from supernet.mobilenetv3 import MobileNetV3Supernet
from supernet.pretrained import PUBLISHED, load_pretrained, published
from supernet.protocol import Supernet


def published_architecture(name: str, path: str | None = None, trusted: bool = False) -> Supernet:
    """The supernet of a published option, for timing: an image space with initial weights
    (its subnets' graphs time like the published ones: no weight changes an operator's cost);
    a translation space with its published weights, the only place its vocabulary is."""
    spec = published(name)
    if spec.format == "ofa_mbv3":
        return MobileNetV3Supernet(**dict(spec.supernet))
    return load_pretrained(name, path=path, trusted=trusted)


def main(argv: Sequence[str] | None = None) -> int:
    """Write a device kit; exit code 2 with one `error:` line for input it cannot use."""
    parser = argparse.ArgumentParser(
        prog="python -m search.device_kit",
        description="Write a kit for timing a supernet's subnets on another device: ONNX "
        f"graphs, {TABLE} to fill and {RUNNER}, which fills it there.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", help="the supernet checkpoint (last.ckpt)")
    source.add_argument("--pretrained", choices=sorted(PUBLISHED),
                        help="a published supernet's space (image spaces: no download, weights "
                        "do not matter; translation spaces: the file, for its vocabulary)")
    parser.add_argument("--pretrained-path",
                        help="a local copy of the published file (translation options)")
    parser.add_argument("--out", required=True, help="the kit's folder (must not hold a kit)")
    parser.add_argument("--count", type=int, default=60, help="subnets in the kit (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random subnets")
    parser.add_argument("--batch", type=int, default=1, help="batch of the graphs (default 1)")
    parser.add_argument("--opset", type=int, default=ONNX_OPSET, help="ONNX opset")
    parser.add_argument("--weights", action="store_true",
                        help="keep the trained weights in the graphs (large; by default the "
                        "runner times each graph on random weights it writes beside it)")
    parser.add_argument("--trusted", action="store_true",
                        help="load a checkpoint holding Python objects (runs code from it)")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    if args.pretrained_path and not args.pretrained:
        parser.error("--pretrained-path goes with --pretrained")
    supernet: Supernet
    try:
        if args.pretrained:
            supernet = published_architecture(args.pretrained, args.pretrained_path,
                                              args.trusted)
            origin = args.pretrained
        else:
            supernet, _ = load_supernet(args.ckpt, trusted=args.trusted)
            origin = str(Path(args.ckpt).resolve())
        out = write_kit(supernet, args.out, args.count, args.seed, args.batch, args.opset,
                        checkpoint=origin, weights=args.weights)
    except (NASError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"wrote {out}: {len(list((out / 'models').glob('*.onnx')))} ONNX graphs, {TABLE}, "
        f"{KIT_JSON}, {RUNNER}\nnext: copy {out} to the device and run `python {RUNNER}` "
        f"there (numpy and onnxruntime), then search with `python search.py hardware=device "
        f"hardware.path={out / TABLE}`"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
