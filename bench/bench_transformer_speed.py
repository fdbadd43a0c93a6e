"""Speed of the Transformer supernet: weight-sharing overhead and incremental decoding.

1. Train-step time (forward, backward, Adam step) of the supernet with its largest
   SubTransformer active, divided by that of the same SubTransformer exported as a static
   model: what front-sliced weight sharing costs. Target ≤ 1.10.
2. Beam search (beam 5) producing exactly 30 tokens for one 30-token sentence (HAT's latency
   setting): incremental decoding (cached keys/values, encoder once) against recomputing the
   whole prefix at every step. Target ≥ 3×.

Both run at the CPU twin's widths and at HAT's WMT widths (32k vocabulary). Timings are
interleaved (load changes hit both sides alike); the ratio of medians is the figure, the ratio
of the fastest runs is printed next to it as a check on a busy machine.

    python bench/bench_transformer_speed.py [--scales cpu,hat_wmt] [--threads 1] [--repeats 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._timing import interleaved  # noqa: E402
from supernet.transformer.beam import beam_search  # noqa: E402
from supernet.transformer.model import TransformerSupernet  # noqa: E402

SCALES = {
    "cpu": dict(
        encoder_embed_dims=[64, 96], decoder_embed_dims=[64, 96], ffn_dims=[128, 256, 384],
        heads=[2, 4], qkv_dim=96, encoder_layers=3, decoder_layers=[1, 2, 3], vocab=110,
        batch=(128, 16),
    ),
    "hat_wmt": dict(
        encoder_embed_dims=[512, 640], decoder_embed_dims=[512, 640],
        ffn_dims=[1024, 2048, 3072], heads=[4, 8], qkv_dim=512, encoder_layers=6,
        decoder_layers=[1, 2, 3, 4, 5, 6], vocab=32000, batch=(16, 24),
    ),
}  # fmt: skip


def _ratio(times: dict[str, list[float]], num: str, den: str) -> dict[str, float]:
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        **med,
        "ratio": med[num] / med[den],
        "ratio_fastest": min(times[num]) / min(times[den]),
    }


def train_step_overhead(
    net: TransformerSupernet,
    batch: tuple,
    repeats: int,
    arch: Mapping[str, Any] | None = None,
    sync: Callable[[], object] = lambda: None,
) -> dict:
    """Train-step times (forward, backward, Adam) of `arch` (default: the largest) in the
    supernet and exported, and their ratio; `sync` waits for a GPU (`interleaved`)."""
    src, prev, target = batch
    arch = net.space.largest() if arch is None else arch
    net.train().set_active(arch)
    static = net.export_subnet(arch).train()

    def step_of(model: torch.nn.Module) -> Callable[[], None]:
        opt = torch.optim.Adam(model.parameters(), 1e-4, betas=(0.9, 0.98))

        def step() -> None:
            logits = model(src, prev)
            loss = F.cross_entropy(
                logits.flatten(0, 1), target.flatten(), ignore_index=1, label_smoothing=0.1
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return step

    times = interleaved({"supernet": step_of(net), "static": step_of(static)}, repeats, sync=sync)
    return _ratio(times, "supernet", "static")


def decoding_speedup(net: TransformerSupernet, src_len: int, out_len: int, repeats: int) -> dict:
    net.eval().set_max()
    model = net.export_subnet(net.space.largest()).eval()
    src = torch.randint(4, net.config()["src_vocab_size"], (1, src_len))
    src[0, -1] = net.eos_index

    def run(incremental: bool) -> Callable[[], object]:
        return lambda: beam_search(
            model, src, beam_size=5, max_len_a=0.0, max_len_b=out_len, min_len=out_len,
            incremental=incremental,
        )  # fmt: skip

    tokens = beam_search(model, src, 5, max_len_a=0.0, max_len_b=out_len, min_len=out_len)
    assert len(tokens[0].tokens) == out_len
    times = interleaved({"recompute": run(False), "incremental": run(True)}, repeats)
    return _ratio(times, "recompute", "incremental")


def bench_scale(scale: str, repeats: int) -> None:
    torch.manual_seed(0)
    spec = dict(SCALES[scale])
    vocab, (bsz, length) = spec.pop("vocab"), spec.pop("batch")
    net = TransformerSupernet(vocab, vocab, **spec, share_all_embeddings=True, dropout=0.1)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(4, vocab, (bsz, length + 1), generator=g)
    src, target = tokens[:, :-1].clone(), tokens[:, 1:].clone()
    src[:, -1] = target[:, -1] = net.eos_index
    prev = torch.cat([torch.zeros(bsz, 1, dtype=torch.long), target[:, :-1]], dim=1)
    params = net.params(net.space.largest()) / 1e6
    print(f"[{scale}] largest SubTransformer: {params:.2f}M parameters, vocabulary {vocab}")
    o = train_step_overhead(net, (src, prev, target), repeats)
    print(
        f"[{scale}] train step, batch {bsz}x{length} tokens: supernet "
        f"{o['supernet'] * 1e3:.1f} ms, static {o['static'] * 1e3:.1f} ms, ratio "
        f"{o['ratio']:.3f} (fastest runs {o['ratio_fastest']:.3f}; target <= 1.10)"
    )
    d = decoding_speedup(net, src_len=30, out_len=30, repeats=repeats)
    print(
        f"[{scale}] beam 5, 30 source -> 30 output tokens: incremental "
        f"{d['incremental'] * 1e3:.1f} ms, recompute prefix {d['recompute'] * 1e3:.1f} ms, "
        f"speedup {d['ratio']:.2f}x (fastest runs {d['ratio_fastest']:.2f}x; target >= 3)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="cpu,hat_wmt", help=f"any of {sorted(SCALES)}")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    scales = [s.strip() for s in args.scales.split(",") if s.strip()]
    unknown = sorted(set(scales) - set(SCALES))
    if unknown:
        parser.error(f"unknown scales {unknown}; choose from {sorted(SCALES)}")
    torch.set_num_threads(args.threads)
    print(
        f"threads={args.threads} repeats={args.repeats} load_avg_1min={os.getloadavg()[0]:.1f} "
        f"torch={torch.__version__}"
    )
    for scale in scales:
        bench_scale(scale, args.repeats)
    print(f"load_avg_1min after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
