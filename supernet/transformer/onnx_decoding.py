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

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
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
    tokens = {"pad_index": model.pad_index, "bos_index": model.bos_index,
              "eos_index": model.eos_index, "first_token": first_token(model),
              "max_positions": model.max_positions}  # fmt: skip
    _annotate(decoder, {k: str(v) for k, v in tokens.items()})
    return encoder, decoder


def _annotate(graph: Path, metadata: dict[str, str]) -> None:
    """Store `metadata` in the graph's `metadata_props` (ONNX Runtime: `get_modelmeta()`)."""
    import onnx

    proto = onnx.load(str(graph))
    onnx.helper.set_model_props(proto, metadata)
    onnx.save_model(proto, str(graph))


class OnnxTranslationModel:
    """A translation subnet's encoder and decoder-step graphs in ONNX Runtime, behind the
    decoding API `beam_search` and `greedy_decode` use: the same search, fairseq's semantics
    (length penalty, maximum length, finished hypotheses), without PyTorch modules.

        model = OnnxTranslationModel.load("best/best_all")
        hypotheses = beam_search(model, src_tokens, beam_size=4, len_penalty=0.6)

    Args:
        encoder, decoder: ONNX Runtime sessions of `export_decoding`'s two graphs.
    """

    training = False

    def __init__(self, encoder: Any, decoder: Any) -> None:
        self.encoder, self.decoder = encoder, decoder
        meta = decoder.get_modelmeta().custom_metadata_map
        self.pad_index, self.bos_index = int(meta["pad_index"]), int(meta["bos_index"])
        self.eos_index, self.max_positions = int(meta["eos_index"]), int(meta["max_positions"])
        self.first_token = int(meta["first_token"])
        self._inputs = {i.name for i in decoder.get_inputs()}
        self._past = [(i.name, i.shape) for i in decoder.get_inputs() if i.name.startswith("self_")]

    @classmethod
    def load(cls, prefix: str | Path, providers: Sequence[str] = ("CPUExecutionProvider",)) -> (
        OnnxTranslationModel
    ):
        """The model of `<prefix>.encoder.onnx` and `<prefix>.decoder.onnx`."""
        import onnxruntime as ort

        prefix = Path(prefix)
        sessions = [ort.InferenceSession(str(prefix.with_name(prefix.name + suffix)),
                                         providers=list(providers))
                    for suffix in (ENCODER_SUFFIX, DECODER_SUFFIX)]  # fmt: skip
        return cls(*sessions)

    def eval(self) -> OnnxTranslationModel:
        return self

    def train(self, mode: bool = True) -> OnnxTranslationModel:
        return self

    def encode(self, src_tokens: torch.Tensor) -> _Encoded:
        outs = self.encoder.run(None, {"src_tokens": src_tokens.cpu().numpy()})
        names = [o.name for o in self.encoder.get_outputs()]
        return _Encoded({n: v for n, v in zip(names, outs, strict=True) if n in self._inputs})

    def new_cache(self) -> dict[str, Any]:
        return {}

    def decode(self, prev_tokens: torch.Tensor, encoder_out: _Encoded, cache: Any) -> torch.Tensor:
        """Log-probabilities of the next token, (N, 1, vocab) (incremental decoding only)."""
        if cache is None:
            raise ValueError("ONNX decoding is incremental: pass a cache from new_cache()")
        tokens = prev_tokens.cpu().numpy()
        if tokens.shape[1] == 1:  # the graph was traced past the first step: start token here
            tokens = np.full_like(tokens, self.first_token)
        rows = tokens.shape[0]
        for name, shape in self._past:
            cache.setdefault(name, np.zeros([rows, shape[1], 0, shape[3]], dtype=np.float32))
        feed = {**encoder_out.arrays, **cache, "prev_tokens": tokens}
        lprobs, *past = self.decoder.run(None, feed)
        for (name, _), value in zip(self._past, past, strict=True):
            cache[name] = value
        return torch.from_numpy(lprobs)[:, None, :]

    @staticmethod
    def reorder_cache(cache: dict[str, Any], order: torch.Tensor, memory: bool = True) -> None:
        index = order.cpu().numpy()
        for name in cache:
            cache[name] = cache[name][index]


class _Encoded:
    """The encoder graph's outputs, selectable by batch row as `EncoderOut` is."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays

    def index_select(self, order: torch.Tensor) -> _Encoded:
        index = order.cpu().numpy()
        return _Encoded({k: v[index] for k, v in self.arrays.items()})


def _seeded() -> torch.Generator:
    return torch.Generator().manual_seed(0)
