"""The forward and decoding API shared by the supernet and the subnets it exports.

`encode` runs the encoder once; `decode` runs the decoder either teacher-forced over a whole
prefix or incrementally (one new token per call, keys/values cached per decoder layer, the
encoder-decoder keys/values computed once). Beam search only talks to this API.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from supernet.ops.elastic_embedding import embedding_weight
from supernet.transformer.errors import SequenceTooLongError
from supernet.transformer.layers import DecoderLayer, EncoderLayer, EncoderOut

DecoderCache = list[dict[str, dict[str, torch.Tensor]]]


@lru_cache(maxsize=32)
def sinusoidal_table(num_positions: int, dim: int) -> torch.Tensor:
    """Sinusoidal position embeddings (fairseq layout: sines then cosines), (num, dim)."""
    half = dim // 2
    scale = math.log(10000.0) / max(half - 1, 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -scale)
    angles = torch.arange(num_positions, dtype=torch.float32)[:, None] * freqs[None, :]
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2:
        table = torch.cat([table, torch.zeros(num_positions, 1)], dim=1)
    return table


@lru_cache(maxsize=64)
def _causal_mask(length: int) -> torch.Tensor:
    return torch.triu(torch.full((length, length), float("-inf")), diagonal=1)


@dataclass(frozen=True)
class InputConventions:
    """How positions and the decoder's first token are presented to the weights.

    The defaults are this framework's: positions count from 0 in a table computed at the
    active width, and decoding starts from beginning-of-sentence. Weights trained with fairseq
    (HAT) expect positions from `padding_idx + 1`, read as the front columns of a table computed
    at the largest width, and end-of-sentence as the decoder's first input.

    Args:
        position_offset: table row of a sentence's first token.
        enc_position_dim, dec_position_dim: width at which the position table is computed
            before its first columns are taken (None: the active width).
        start_index: the decoder's first input token (None: the `bos_index` it is given).
    """

    position_offset: int = 0
    enc_position_dim: int | None = None
    dec_position_dim: int | None = None
    start_index: int | None = None

    @classmethod
    def fairseq(
        cls, pad_index: int, eos_index: int, enc_dim: int, dec_dim: int
    ) -> InputConventions:
        """fairseq's conventions for a model whose largest widths are `enc_dim`, `dec_dim`."""
        return cls(pad_index + 1, enc_dim, dec_dim, eos_index)


class TransformerCore(nn.Module):
    """Encoder-decoder Transformer over given modules; subclasses decide which modules.

    Args:
        src_embed, tgt_embed: token tables (the same module when all embeddings are shared);
            a table may be wider than the width in use, its first columns are read.
        encoder_layers, decoder_layers: the layers; the first `num_decoder_layers` decode.
        encoder_norm, decoder_norm: final LayerNorms (pre-norm models), else None.
        output_proj: output projection, or None to reuse `tgt_embed` (tied).
        pad_index, bos_index, eos_index: special tokens of the target dictionary.
        max_positions: longest source or target sequence (tokens, end-of-sentence included).
        conventions: position numbering and decoder start token the weights expect.
    """

    def __init__(
        self,
        src_embed: nn.Module,
        tgt_embed: nn.Module,
        encoder_layers: nn.ModuleList,
        decoder_layers: nn.ModuleList,
        encoder_norm: nn.Module | None,
        decoder_norm: nn.Module | None,
        output_proj: nn.Module | None,
        pad_index: int,
        bos_index: int,
        eos_index: int,
        max_positions: int,
        conventions: InputConventions | None = None,
    ) -> None:
        super().__init__()
        self.conventions = conventions or InputConventions()
        self.src_embed, self.tgt_embed = src_embed, tgt_embed
        self.encoder_layers, self.decoder_layers = encoder_layers, decoder_layers
        self.encoder_norm, self.decoder_norm = encoder_norm, decoder_norm
        self.output_proj = output_proj
        self.pad_index, self.bos_index, self.eos_index = pad_index, bos_index, eos_index
        self.max_positions = max_positions
        # the active structure; the supernet changes these in set_active
        self.enc_dim = 0
        self.dec_dim = 0
        self.num_decoder_layers = len(decoder_layers)
        self.encoder_keep = 1
        self.enc_dropout = 0.0
        self.dec_dropout = 0.0

    # --- pieces ------------------------------------------------------------------------------
    def _embed(
        self,
        tokens: torch.Tensor,
        table: nn.Module,
        dim: int,
        offset: int,
        dropout: float,
        position_dim: int | None,
    ) -> torch.Tensor:
        x = F.embedding(tokens, embedding_weight(table, dim), self.pad_index) * math.sqrt(dim)
        shift = self.conventions.position_offset
        table_rows = sinusoidal_table(self.max_positions + shift, position_dim or dim)
        positions = table_rows[offset + shift : offset + shift + tokens.shape[1], :dim]
        x = x + positions.to(device=x.device, dtype=x.dtype)
        return F.dropout(x, p=dropout, training=self.training)

    def _check_length(self, tokens: torch.Tensor, what: str) -> None:
        if tokens.shape[1] > self.max_positions:
            raise SequenceTooLongError(
                f"{what} of {tokens.shape[1]} tokens exceeds max_positions="
                f"{self.max_positions}; shorten or split the sentence, or train a model with a "
                "larger supernet.max_positions"
            )

    def output_layer(self, x: torch.Tensor) -> torch.Tensor:
        if self.output_proj is None:
            return F.linear(x, embedding_weight(self.tgt_embed, self.dec_dim))
        return self.output_proj(x)

    # --- the API -------------------------------------------------------------------------------
    def encode(self, src_tokens: torch.Tensor) -> EncoderOut:
        """Run the encoder once over (B, S) right-padded source tokens."""
        self._check_length(src_tokens, "a source sentence")
        padding_mask = src_tokens.eq(self.pad_index)
        x = self._embed(
            src_tokens,
            self.src_embed,
            self.enc_dim,
            0,
            self.enc_dropout,
            self.conventions.enc_position_dim,
        )
        layers = list(self.encoder_layers)
        first_kept = len(layers) - self.encoder_keep
        states = []
        for i, layer in enumerate(layers):
            x = layer(x, padding_mask)
            if i >= first_kept:
                states.append(x)
        if self.encoder_norm is not None:
            states = [self.encoder_norm(s) for s in states]
        return EncoderOut(states, padding_mask)

    def decode(
        self,
        prev_tokens: torch.Tensor,
        encoder_out: EncoderOut,
        cache: DecoderCache | None = None,
    ) -> torch.Tensor:
        """Next-token logits.

        Without a cache: teacher-forced over the whole (B, T) prefix, logits (B, T, V). With a
        cache from `new_cache()`: only the last token of the prefix is new, logits (B, 1, V).
        """
        self._check_length(prev_tokens, "a target prefix")
        if cache is None:
            tokens, offset = prev_tokens, 0
            causal = _causal_mask(tokens.shape[1]).to(prev_tokens.device)
        else:
            tokens, offset, causal = prev_tokens[:, -1:], prev_tokens.shape[1] - 1, None
        start = self.conventions.start_index
        if start is not None and offset == 0:  # the weights' own start token
            tokens = tokens.clone()
            tokens[:, 0] = start
        x = self._embed(
            tokens,
            self.tgt_embed,
            self.dec_dim,
            offset,
            self.dec_dropout,
            self.conventions.dec_position_dim,
        )
        for i in range(self.num_decoder_layers):
            layer: DecoderLayer = self.decoder_layers[i]  # type: ignore[assignment]
            x = layer(x, encoder_out, causal, None if cache is None else cache[i])
        if self.decoder_norm is not None:
            x = self.decoder_norm(x)
        return self.output_layer(x)

    def forward(self, src_tokens: torch.Tensor, prev_output_tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, T, V)."""
        return self.decode(prev_output_tokens, self.encode(src_tokens))

    def new_cache(self) -> DecoderCache:
        """An empty incremental-decoding state (one entry per active decoder layer)."""
        return [{} for _ in range(self.num_decoder_layers)]

    @staticmethod
    def reorder_cache(
        cache: DecoderCache, order: torch.Tensor, memory: bool = True
    ) -> DecoderCache:
        """Select batch rows of a cache (beam search keeps the best continuations).

        `memory=False` leaves the encoder-decoder keys/values alone: right when `order` only
        permutes the beams of each sentence, which all attend to the same encoder output.
        """
        for layer in cache:
            for name, part in layer.items():
                if memory or name != "cross":
                    for key, value in part.items():
                        part[key] = value.index_select(0, order)
        return cache


class SubTransformer(TransformerCore):
    """A static Transformer exported from the supernet: plain modules with sliced weights.

    It has exactly the layers and widths of one architecture and the decoding API of the
    supernet, so it can be timed, saved and served on its own.
    """

    def __init__(
        self,
        src_embed: nn.Embedding,
        tgt_embed: nn.Embedding,
        encoder_layers: list[EncoderLayer],
        decoder_layers: list[DecoderLayer],
        encoder_norm: nn.LayerNorm | None,
        decoder_norm: nn.LayerNorm | None,
        output_proj: nn.Linear | None,
        enc_dim: int,
        dec_dim: int,
        enc_dropout: float,
        dec_dropout: float,
        pad_index: int,
        bos_index: int,
        eos_index: int,
        max_positions: int,
        conventions: InputConventions | None = None,
    ) -> None:
        super().__init__(
            src_embed,
            tgt_embed,
            nn.ModuleList(encoder_layers),
            nn.ModuleList(decoder_layers),
            encoder_norm,
            decoder_norm,
            output_proj,
            pad_index,
            bos_index,
            eos_index,
            max_positions,
            conventions,
        )
        self.enc_dim, self.dec_dim = enc_dim, dec_dim
        self.enc_dropout, self.dec_dropout = enc_dropout, dec_dropout
        self.encoder_keep = max(layer.ende for layer in decoder_layers)
