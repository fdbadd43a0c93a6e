"""A SubTransformer's incremental decoding as two ONNX graphs, for devices that run ONNX only.

A translation's latency is a beam search, not one forward pass: the encoder once, then one
decoder step per target token, each reading the keys/values the earlier steps cached. Two
graphs hold all of the model's work in that loop:

- the *encoder graph*: source tokens → the source padding mask and, for every decoder layer,
  the keys and values of its encoder-decoder attention (computed once per sentence, as the
  first decoder step does in PyTorch);
- the *decoder-step graph*: the target prefix (its last token is the new one, its length gives
  the position), the padding mask, those keys/values and the self-attention keys/values of the
  earlier steps → the next token's log-probabilities and the self-attention keys/values with
  this step's appended.

The beam search around them (top-k, reordering the beams' caches) is a few array operations:
`search/hardware/device_runner.py` runs it with numpy on the device.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from supernet.export import ONNX_OPSET, to_onnx
from supernet.transformer.core import SubTransformer
from supernet.transformer.layers import DecoderLayer, EncoderOut

ENCODER_SUFFIX = ".encoder.onnx"
DECODER_SUFFIX = ".decoder.onnx"


def _decoder_layers(model: SubTransformer) -> list[DecoderLayer]:
    return list(model.decoder_layers)[: model.num_decoder_layers]  # type: ignore[return-value]


def vocab_sizes(model: SubTransformer) -> tuple[int, int]:
    """Rows of the source and the target token tables."""
    sizes = []
    for table in (model.src_embed, model.tgt_embed):
        weight = table.weight
        assert isinstance(weight, torch.Tensor)
        sizes.append(int(weight.shape[0]))
    return sizes[0], sizes[1]


def first_token(model: SubTransformer) -> int:
    """The token a decoding starts from (the weights' own start token where they have one)."""
    start = model.conventions.start_index
    return model.bos_index if start is None else int(start)


class EncoderGraph(nn.Module):
    """Source tokens (B, S) → padding mask (B, S), then `cross_k{i}`, `cross_v{i}` per decoder
    layer: (B, heads, S × encoder layers attended, head size)."""

    def __init__(self, model: SubTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(self, src_tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
        encoded = self.model.encode(src_tokens)
        out = [encoded.padding_mask]
        for layer in _decoder_layers(self.model):
            memory, _ = encoded.memory(layer.ende)
            out += layer.cross_attn.keys_values(memory)  # type: ignore[operator]
        return tuple(out)


class DecoderStepGraph(nn.Module):
    """One incremental step: `(prev_tokens (N, t + 1), padding_mask (N, S), cross_k1, cross_v1,
    ..., self_k1, self_v1, ...)` with self keys/values (N, heads, t, head size) → `(lprobs
    (N, vocab), self_k1, self_v1, ...)` with (N, heads, t + 1, head size)."""

    def __init__(self, model: SubTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, prev_tokens: torch.Tensor, padding_mask: torch.Tensor, *kv: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        n = self.model.num_decoder_layers
        cross, past = kv[: 2 * n], kv[2 * n :]
        cache = [
            {"cross": {"k": cross[2 * i], "v": cross[2 * i + 1]},
             "self": {"k": past[2 * i], "v": past[2 * i + 1]}}
            for i in range(n)
        ]  # fmt: skip
        # with the encoder-decoder keys/values cached, a layer reads only the padding mask of
        # the encoder output; the states stand in for the ones the keys/values came from
        keep = self.model.encoder_keep
        encoded = EncoderOut([padding_mask] * keep, padding_mask)
        logits = self.model.decode(prev_tokens, encoded, cache)[:, -1]
        out = [F.log_softmax(logits.float(), dim=-1)]
        for layer in cache:
            out += [layer["self"]["k"], layer["self"]["v"]]
        return tuple(out)


def export_decoding(
    model: SubTransformer,
    prefix: str | Path,
    batch_size: int = 1,
    src_len: int = 30,
    beam_size: int = 5,
    opset: int = ONNX_OPSET,
) -> tuple[Path, Path]:
    """Write `<prefix>.encoder.onnx` and `<prefix>.decoder.onnx` for `model` (eval mode).

    Traced on `batch_size` sentences of `src_len` tokens and `batch_size × beam_size` beams;
    every batch, sentence and prefix length stays dynamic.
    """
    model = model.eval()
    prefix = Path(prefix)
    layers = _decoder_layers(model)
    vocab = vocab_sizes(model)[0]
    src = torch.randint(4, max(vocab, 5), (batch_size, src_len), generator=_seeded())
    src[:, -1] = model.eos_index
    encoder = prefix.with_name(prefix.name + ENCODER_SUFFIX)
    cross_names = [f"cross_{kv}{i}" for i in range(1, len(layers) + 1) for kv in "kv"]
    batch_axes = {0: "batch", 2: "memory_length"}
    to_onnx(
        EncoderGraph(model), (src,), encoder, opset,
        names=(["src_tokens"], ["padding_mask", *cross_names]),
        dynamic_axes={"src_tokens": {0: "batch", 1: "src_length"},
                      "padding_mask": {0: "batch", 1: "src_length"},
                      **{name: batch_axes for name in cross_names}},
    )  # fmt: skip
    with torch.no_grad():
        mask, *cross = EncoderGraph(model)(src)
    beams = torch.arange(batch_size).repeat_interleave(beam_size)
    mask, cross = mask.index_select(0, beams), [c.index_select(0, beams) for c in cross]
    steps = 2  # a prefix longer than one token: the step's position comes from its length
    prev = torch.full((len(beams), steps + 1), first_token(model), dtype=torch.long)
    past = []
    for layer in layers:
        heads = layer.self_attn.num_heads
        size = layer.self_attn.qkv_dim // heads
        past += [torch.zeros(len(beams), heads, steps, size) for _ in "kv"]
    past_names = [f"self_{kv}{i}" for i in range(1, len(layers) + 1) for kv in "kv"]
    step_axes = {0: "beams", 2: "steps_before"}
    decoder = prefix.with_name(prefix.name + DECODER_SUFFIX)
    to_onnx(
        DecoderStepGraph(model), (prev, mask, *cross, *past), decoder, opset,
        names=(["prev_tokens", "padding_mask", *cross_names, *past_names],
               ["lprobs", *(f"new_{name}" for name in past_names)]),
        dynamic_axes={"prev_tokens": {0: "beams", 1: "prefix_length"},
                      "padding_mask": {0: "beams", 1: "src_length"},
                      **{name: {0: "beams", 2: "memory_length"} for name in cross_names},
                      **{name: step_axes for name in past_names},
                      **{f"new_{name}": {0: "beams", 2: "steps_after"} for name in past_names},
                      "lprobs": {0: "beams"}},
    )  # fmt: skip
    return encoder, decoder


def _seeded() -> torch.Generator:
    return torch.Generator().manual_seed(0)
