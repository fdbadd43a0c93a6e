"""The default CPU run of the Transformer supernet, timed, then scored on the test split.

Runs `python train.py supernet=transformer` (the CPU twin of the HAT space on its default
data, the number-phrase corpus) through the pipeline, from an empty data directory unless
`--data-dir` points at a cached corpus, and reports the wall-clock time, the final validation
BLEU with the spread between the largest and the smallest SubTransformer, and their test BLEU
(greedy, and beam 4 with length penalty 0.6 as HAT reports). Targets on 2 CPU cores: within
15 minutes, validation BLEU ≥ 60 for the largest and largest − smallest ≥ 5.

    python bench/bench_transformer_train.py [--threads 1] [--out DIR] [-- hydra overrides]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import open_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from supernet.pipeline import train  # noqa: E402
from supernet.transformer.evaluation import evaluate_translation  # noqa: E402
from supernet.transformer.module import load_translation_checkpoint  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="run directory (default: a temp dir)")
    parser.add_argument("--data-dir", default=None, help="corpus cache (default: inside --out)")
    parser.add_argument("--ckpt", default=None, help="skip training; score this checkpoint")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="bench_transformer_"))
    overrides = ["supernet=transformer", "logger=csv", f"threads={args.threads}", *args.overrides]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out / "run")
        cfg.paths.log_dir = str(out / "logs")
        cfg.paths.data_dir = args.data_dir or str(out / "data")
    print(f"overrides: {' '.join(overrides)}")
    print(f"cpu cores: {os.cpu_count()}, threads: {args.threads}, torch {torch.__version__}")
    print(f"load average before: {os.getloadavg()}")
    ckpt = Path(args.ckpt) if args.ckpt else out / "run" / "checkpoints" / "last.ckpt"
    if not args.ckpt:
        start = time.perf_counter()
        metrics = train(cfg)
        minutes = (time.perf_counter() - start) / 60
        print(f"training wall-clock (data preparation included): {minutes:.1f} min")
        print("final validation:", {k: round(v, 3) for k, v in metrics.items() if "val/" in k})
        if "val/bleu_max" in metrics and "val/bleu_min" in metrics:
            spread = metrics["val/bleu_max"] - metrics["val/bleu_min"]
            print(f"validation BLEU spread (largest - smallest): {spread:.2f}")
        print(f"load average after training: {os.getloadavg()}")
    torch.set_num_threads(args.threads)
    supernet, src_vocab, tgt_vocab, _ = load_translation_checkpoint(ckpt)
    data = instantiate(cfg.data)
    data.use_vocabulary(src_vocab, tgt_vocab)
    data.setup("test")
    print("splits (pairs): " + ", ".join(f"{s} {len(d)}" for s, d in data.datasets.items()))
    space = supernet.space
    for name, arch in (("largest", space.largest()), ("smallest", space.smallest())):
        for beam, lenpen in ((1, 1.0), (4, 0.6)):
            start = time.perf_counter()
            score = evaluate_translation(
                supernet, data.loader("test"), tgt_vocab, arch, beam_size=beam, len_penalty=lenpen
            )
            print(
                f"test {name:8s} beam {beam} lenpen {lenpen}: BLEU {score.bleu:.2f}, "
                f"loss {score.loss:.3f}, {score.sentences} sentences, "
                f"params {supernet.params(arch) / 1e6:.2f}M, "
                f"decode {time.perf_counter() - start:.0f} s"
            )
    print(f"checkpoint: {ckpt}")


if __name__ == "__main__":
    main()
