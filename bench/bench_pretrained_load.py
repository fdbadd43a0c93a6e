"""Loading published supernets: time to read and convert each kind of file, and how closely the
loaded supernet reproduces the publisher's own code.

For each published option, random weights of the full-size network are written in the
publisher's format (OFA: `{"state_dict"}` with OFA's published names; HAT: a fairseq
checkpoint with WMT's 32,768-symbol joined dictionary or IWSLT's two dictionaries), then
`load_pretrained(name, path=...)` is timed: `torch.load` of the file, and building our
supernet plus mapping every tensor by name. With the reference code installed (`ofa`;
`dynast` for HAT) it then prints the largest difference over the largest, the smallest and
`--subnets` random subnets: logits relative to the largest logit (OFA, resolutions 128-224)
or log-probabilities (HAT, teacher-forced). Wall-clock seconds, one thread by default.

    python bench/bench_pretrained_load.py [--subnets 25] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from supernet.mobilenetv3.ofa_weights import ofa_settings  # noqa: E402
from supernet.pretrained import (  # noqa: E402
    PUBLISHED,
    build_published,
    published,
    read_weights,
    save_as_published,
)
from supernet.transformer.hat_weights import hat_config  # noqa: E402
from supernet.transformer.model import TransformerSupernet  # noqa: E402

# dictionary sizes of HAT's preprocessed data-bins (WMT: one joined dictionary)
VOCABS = {"hat_wmt14ende": (32768, 32768), "hat_wmt14enfr": (32768, 32768),
          "hat_wmt19ende": (32768, 32768), "hat_iwslt14deen": (8848, 6632)}


def _archs(space: Any, n: int) -> list[Any]:
    rng = np.random.default_rng(0)
    return [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(n)]


def write_file(name: str, folder: Path) -> tuple[Path, Any]:
    """Random full-size weights of `name` in its publisher's format, and the reference model
    (None without the reference package)."""
    spec, path = published(name), folder / name
    reference: Any = None
    try:
        from tests.supernet.published_references import (
            hat_network,
            ofa_network,
            save_hat,
            save_ofa,
        )

        if spec.format == "ofa_mbv3":
            reference = ofa_network(spec.supernet["width_mult"])
            save_ofa(reference, path)
        else:
            cfg = spec.supernet
            reference = hat_network(VOCABS[name][0], max(cfg["ffn_dims"]), max(cfg["heads"]),
                                    shared=cfg["share_all_embeddings"], tgt_vocab=VOCABS[name][1])
            save_hat(*reference, path)
    except pytest.skip.Exception as skipped:
        print(f"  {name}: no reference ({skipped.msg}); timing our own export")
    if reference is None:
        if spec.format == "hat":
            src, tgt = VOCABS[name]
            net: Any = TransformerSupernet(**spec.supernet, src_vocab_size=src,
                                           tgt_vocab_size=tgt,
                                           share_decoder_input_output_embed=False)
        else:
            from supernet.mobilenetv3 import MobileNetV3Supernet

            net = MobileNetV3Supernet(**spec.supernet)
        save_as_published(spec, net, path)
    return path, reference


def time_load(name: str, path: Path, repeats: int) -> tuple[float, float, Any]:
    """Median seconds of reading the file and of building + converting; the last supernet."""
    spec, reads, builds = published(name), [], []
    supernet = None
    for _ in range(repeats):
        start = time.perf_counter()
        state = read_weights(path, spec)
        middle = time.perf_counter()
        supernet = build_published(spec, state)
        reads.append(middle - start)
        builds.append(time.perf_counter() - middle)
    return statistics.median(reads), statistics.median(builds), supernet


@torch.no_grad()
def ofa_difference(ours: Any, ofa: Any, subnets: int) -> float:
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    worst = 0.0
    for i, arch in enumerate(_archs(ours.space, subnets)):
        arch = ours.space.arch(arch.replace(resolution=(128, 160, 192, 224)[i % 4]))
        x = F.interpolate(images, size=(arch["resolution"],) * 2, mode="bilinear")
        ofa.set_active_subnet(**ofa_settings(arch, ours.layout))
        ours.set_active(arch)
        theirs = ofa(x)
        worst = max(worst, float((ours(x) - theirs).abs().max() / theirs.abs().max()))
    return worst


@torch.no_grad()
def hat_difference(ours: Any, reference: Any, subnets: int) -> float:
    from tests.supernet.published_references import hat_log_probs

    encoder, decoder = reference
    g = torch.Generator().manual_seed(2)
    src = torch.randint(4, 1000, (2, 12), generator=g)  # below both dictionaries' sizes
    src[:, -1] = 2
    prev = torch.randint(4, 1000, (2, 10), generator=g)
    theirs_prev = prev.clone()
    prev[:, 0], theirs_prev[:, 0] = 0, 2
    worst = 0.0
    for arch in _archs(ours.space, subnets):
        config = hat_config(arch, 6, 6)
        encoder.set_sample_config(config)
        decoder.set_sample_config(config)
        ours.set_active(arch)
        mine = F.log_softmax(ours(src, prev).float(), dim=-1)
        worst = max(worst, float((mine - hat_log_probs(encoder, decoder, src, theirs_prev))
                                 .abs().max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subnets", type=int, default=25, help="random subnets per check")
    parser.add_argument("--repeats", type=int, default=3, help="timed loads per file")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=sorted(PUBLISHED), help="options to run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.repeats} loads per file")
    print(f"{'option':17} {'file MB':>8} {'read s':>7} {'build+map s':>12}  largest difference")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            path, reference = write_file(name, Path(tmp))
            read, build, ours = time_load(name, path, args.repeats)
            size = path.stat().st_size / 2**20
            if reference is None:
                diff = "no reference"
            elif published(name).format == "ofa_mbv3":
                diff = f"{ofa_difference(ours, reference, args.subnets):.2e} of the largest logit"
            else:
                diff = f"{hat_difference(ours, reference, args.subnets):.2e} log-probability"
            print(f"{name:17} {size:8.1f} {read:7.2f} {build:12.2f}  {diff}")
            path.unlink()


if __name__ == "__main__":
    main()
