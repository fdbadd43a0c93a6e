"""HAT's latency protocol as a workload the cost models time: one sentence, beam search.

The encoder runs once over a `src_len`-token sentence, then `tgt_len` incremental decoder
steps with beam 5 (end-of-sentence is forbidden until the last step, so every arch decodes
the same number of steps). The cost model (search/hardware/) calls
`workload(exported_subnet, arch)` once and times the closure it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from supernet.transformer.beam import beam_search
from supernet.transformer.core import TransformerCore


class TranslationWorkload:
    """Beam search over a fixed random sentence (`batch_size` copies).

    Args:
        batch_size: sentences decoded together.
        src_len: source tokens, end-of-sentence included.
        tgt_len: decoder steps, end-of-sentence included.
        beam_size: beam width.
        seed: seed of the source tokens.
    """

    def __init__(
        self,
        batch_size: int = 1,
        src_len: int = 30,
        tgt_len: int = 30,
        beam_size: int = 5,
        seed: int = 0,
    ) -> None:
        self.batch_size, self.src_len, self.tgt_len = int(batch_size), int(src_len), int(tgt_len)
        self.beam_size, self.seed = int(beam_size), int(seed)

    def settings(self) -> dict[str, Any]:
        return {
            "workload": "translation",
            "batch_size": self.batch_size,
            "src_len": self.src_len,
            "tgt_len": self.tgt_len,
            "beam_size": self.beam_size,
        }

    def __call__(self, model: nn.Module, arch: Mapping[str, Any]) -> Callable[[], Any]:
        if not isinstance(model, TransformerCore):
            raise TypeError(f"the translation workload times Transformers, not {type(model)}")
        weight = model.src_embed.weight
        assert isinstance(weight, torch.Tensor)
        vocab = int(weight.shape[0])  # source tokens: any of the source dictionary
        generator = torch.Generator().manual_seed(self.seed)
        src = torch.randint(4, vocab, (self.batch_size, self.src_len), generator=generator)
        src[:, -1] = int(model.eos_index)
        src = src.to(weight.device)
        steps = self.tgt_len - 1
        return lambda: beam_search(
            model, src, self.beam_size, max_len_a=0.0, max_len_b=steps, min_len=steps
        )


class TranslationPartsChain:
    """One run of the translation workload, timed part by part for a latency lookup table.

    The parts are the encoder layers, the decoder layers (each one's incremental steps summed
    over the whole beam search) and the rest (embeddings, norms, output layer, beam
    bookkeeping). Forward hooks read the clock around every layer call, so each layer is timed
    inside the real decoding run, with the caches and the data of its neighbours; the rest is
    the run's total minus its layers. `run(timer, sync, out)` is the chain protocol of
    `search.hardware.lookup_table`."""

    def __init__(self, model: TransformerCore, run: Callable[[], Any]) -> None:
        decoder = list(model.decoder_layers)[: model.num_decoder_layers]
        self.layers: list[nn.Module] = [*model.encoder_layers, *decoder]
        self._run = run
        self._out: Any = None
        self._sync: Callable[[], Any] = lambda: None
        self._timer: Callable[[], float] = lambda: 0.0
        self._started = [0.0] * len(self.layers)
        for i, layer in enumerate(self.layers):
            layer.register_forward_pre_hook(self._pre(i))
            layer.register_forward_hook(self._post(i))

    def __len__(self) -> int:
        return len(self.layers) + 1

    def _pre(self, i: int) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any) -> None:
            if self._out is not None:
                self._sync()
                self._started[i] = self._timer()

        return hook

    def _post(self, i: int) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if self._out is not None:
                self._sync()
                self._out[i] += self._timer() - self._started[i]

        return hook

    def run(self, timer: Callable[[], float], sync: Callable[[], Any], out: Any) -> None:
        out[:] = 0.0
        self._out, self._sync, self._timer = out, sync, timer
        try:
            start = timer()
            self._run()
            sync()
            total = timer() - start
        finally:
            self._out = None
        out[-1] = total - float(sum(out[:-1]))


def translation_part_keys(
    config: Mapping[str, Any], arch: Mapping[str, Any], workload: TranslationWorkload
) -> list[str]:
    """Table keys of the parts `TranslationPartsChain` times, in its order.

    A key names everything its part's time depends on: widths, head counts, the encoder
    layers a decoder layer attends to, and the workload (batch, beam, lengths)."""
    at = (
        f"b{workload.batch_size}xbeam{workload.beam_size},"
        f"src{workload.src_len},tgt{workload.tgt_len}"
    )
    enc, dec, qkv = arch["enc_embed"], arch["dec_embed"], config["qkv_dim"]
    keys = [
        f"tx_enc(d={enc},ffn={arch[f'enc_l{i}_ffn']},heads={arch[f'enc_l{i}_heads']},"
        f"qkv={qkv})@{at}"
        for i in range(1, config["encoder_layers"] + 1)
    ]
    layers = arch["dec_layers"]
    keys += [
        f"tx_dec(d={dec},enc={enc},ffn={arch[f'dec_l{i}_ffn']},heads={arch[f'dec_l{i}_heads']},"
        f"xheads={arch[f'dec_l{i}_ende_heads']},ende={arch[f'dec_l{i}_ende']},qkv={qkv})@{at}"
        for i in range(1, layers + 1)
    ]
    keep = max(arch[f"dec_l{i}_ende"] for i in range(1, layers + 1))
    vocab = f"{config['src_vocab_size']}/{config['tgt_vocab_size']}"
    keys.append(f"tx_rest(enc={enc},dec={dec},dec_layers={layers},keep={keep},vocab={vocab})@{at}")
    return keys
