"""The HAT Transformer supernet for machine translation (arXiv 2005.14187).

One SuperTransformer holds the largest widths; a SubTransformer uses front slices of every
weight (embeddings `weight[:, :dim]` scaled by sqrt(dim), linear layers `weight[:out, :in]`,
LayerNorm `[:dim]`), the first `dec_layers` decoder layers, and per decoder layer attention to
the concatenated outputs of the last 1-3 encoder layers. Q/K/V widths stay at `qkv_dim`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from supernet.errors import ConfigError
from supernet.ops.elastic_embedding import ElasticEmbedding
from supernet.ops.elastic_layernorm import ElasticLayerNorm
from supernet.ops.elastic_linear import ElasticLinear
from supernet.protocol import SubnetVerbs
from supernet.space import Arch, SearchSpace
from supernet.transformer.core import InputConventions, SubTransformer, TransformerCore
from supernet.transformer.cost import (
    transformer_macs,
    transformer_macs_parts,
    transformer_params,
)
from supernet.transformer.latency import (
    TranslationPartsChain,
    TranslationWorkload,
    translation_part_keys,
)
from supernet.transformer.layers import ElasticDecoderLayer, ElasticEncoderLayer
from supernet.transformer.space import transformer_space


def _choices(name: str, values: Sequence[int]) -> tuple[int, ...]:
    out = tuple(sorted({int(v) for v in values}))
    if not out or out[0] <= 0:
        raise ConfigError(f"supernet.{name} must list positive integers, got {list(values)}")
    return out


class TransformerSupernet(SubnetVerbs, TransformerCore):
    """Weight-sharing encoder-decoder Transformer with the HAT search space.

    Args:
        src_vocab_size, tgt_vocab_size: dictionary sizes (from the datamodule).
        pad_index, bos_index, eos_index: special tokens of the dictionaries.
        encoder_embed_dims, decoder_embed_dims: embed width choices.
        ffn_dims: FFN hidden width choices (every layer).
        heads: head-count choices of every attention; each must divide `qkv_dim`.
        qkv_dim: fixed width of the Q/K/V projections.
        encoder_layers: encoder depth (fixed, as in HAT).
        decoder_layers: decoder depth choices (a contiguous range, e.g. 1..6).
        ende_layers: choices of how many last encoder layers a decoder layer attends to.
        max_positions: longest source or target sequence, in tokens.
        dropout: dropout of the largest subnet; with `scale_dropout` a subnet of width d uses
            dropout × d / max width (HAT).
        attention_dropout: dropout on attention probabilities.
        normalize_before: pre-norm (True) or post-norm layers (False, as in HAT).
        share_all_embeddings: one table for source, target and output (needs one vocabulary).
        share_decoder_input_output_embed: tie the output projection to the target table.
        scale_dropout: scale dropout with the subnet's embed width.
        fairseq_conventions: read inputs as fairseq-trained weights (HAT's published
            SuperTransformers) expect them: positions from `pad_index + 1` out of a table at the
            largest width, end-of-sentence as the decoder's first token (`InputConventions`).
    """

    src_embed: ElasticEmbedding
    tgt_embed: ElasticEmbedding
    encoder_norm: ElasticLayerNorm | None
    decoder_norm: ElasticLayerNorm | None
    output_proj: ElasticLinear | None

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        pad_index: int = 1,
        bos_index: int = 0,
        eos_index: int = 2,
        encoder_embed_dims: Sequence[int] = (512, 640),
        decoder_embed_dims: Sequence[int] = (512, 640),
        ffn_dims: Sequence[int] = (1024, 2048, 3072),
        heads: Sequence[int] = (4, 8),
        qkv_dim: int = 512,
        encoder_layers: int = 6,
        decoder_layers: Sequence[int] = (1, 2, 3, 4, 5, 6),
        ende_layers: Sequence[int] = (1, 2, 3),
        max_positions: int = 256,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        normalize_before: bool = True,
        share_all_embeddings: bool = False,
        share_decoder_input_output_embed: bool = True,
        scale_dropout: bool = True,
        fairseq_conventions: bool = False,
    ) -> None:
        enc_dims, dec_dims = (
            _choices("encoder_embed_dims", encoder_embed_dims),
            _choices("decoder_embed_dims", decoder_embed_dims),
        )
        ffn, hd = _choices("ffn_dims", ffn_dims), _choices("heads", heads)
        dec_layers, ende = (
            _choices("decoder_layers", decoder_layers),
            _choices("ende_layers", ende_layers),
        )
        if any(qkv_dim % h for h in hd):
            raise ConfigError(f"supernet.heads {list(hd)} must all divide qkv_dim={qkv_dim}")
        if dec_layers != tuple(range(dec_layers[0], dec_layers[-1] + 1)):
            raise ConfigError(
                f"supernet.decoder_layers must be a contiguous range, got {dec_layers}"
            )
        if ende[-1] > encoder_layers:
            raise ConfigError(
                f"supernet.ende_layers {list(ende)} asks for more than {encoder_layers} "
                "encoder layers"
            )
        if share_all_embeddings and src_vocab_size != tgt_vocab_size:
            raise ConfigError(
                "share_all_embeddings needs one joint dictionary, but the source has "
                f"{src_vocab_size} and the target {tgt_vocab_size} symbols; set "
                "supernet.share_all_embeddings=false or build a joined dictionary"
            )
        self._config: dict[str, Any] = {
            "src_vocab_size": int(src_vocab_size),
            "tgt_vocab_size": int(tgt_vocab_size),
            "pad_index": int(pad_index),
            "bos_index": int(bos_index),
            "eos_index": int(eos_index),
            "encoder_embed_dims": list(enc_dims),
            "decoder_embed_dims": list(dec_dims),
            "ffn_dims": list(ffn),
            "heads": list(hd),
            "qkv_dim": int(qkv_dim),
            "encoder_layers": int(encoder_layers),
            "decoder_layers": list(dec_layers),
            "ende_layers": list(ende),
            "max_positions": int(max_positions),
            "dropout": float(dropout),
            "attention_dropout": float(attention_dropout),
            "normalize_before": bool(normalize_before),
            "share_all_embeddings": bool(share_all_embeddings),
            "share_decoder_input_output_embed": bool(share_decoder_input_output_embed),
            "scale_dropout": bool(scale_dropout),
            "fairseq_conventions": bool(fairseq_conventions),
        }
        max_enc, max_dec = enc_dims[-1], dec_dims[-1]
        if share_all_embeddings:
            src_embed = tgt_embed = ElasticEmbedding(
                src_vocab_size, max(max_enc, max_dec), pad_index
            )
        else:
            src_embed = ElasticEmbedding(src_vocab_size, max_enc, pad_index)
            tgt_embed = ElasticEmbedding(tgt_vocab_size, max_dec, pad_index)
        tied = share_all_embeddings or share_decoder_input_output_embed
        super().__init__(
            src_embed,
            tgt_embed,
            nn.ModuleList(
                ElasticEncoderLayer(
                    max_enc, ffn[-1], hd[-1], qkv_dim, dropout, attention_dropout, normalize_before
                )
                for _ in range(encoder_layers)
            ),
            nn.ModuleList(
                ElasticDecoderLayer(
                    max_dec,
                    max_enc,
                    ffn[-1],
                    hd[-1],
                    qkv_dim,
                    ende[-1],
                    dropout,
                    attention_dropout,
                    normalize_before,
                )
                for _ in range(dec_layers[-1])
            ),
            ElasticLayerNorm(max_enc) if normalize_before else None,
            ElasticLayerNorm(max_dec) if normalize_before else None,
            None if tied else ElasticLinear(max_dec, tgt_vocab_size, bias=False),
            pad_index,
            bos_index,
            eos_index,
            max_positions,
            InputConventions.fairseq(pad_index, eos_index, max_enc, max_dec)
            if fairseq_conventions
            else None,
        )
        if self.output_proj is not None:
            nn.init.normal_(self.output_proj.weight, mean=0.0, std=max_dec**-0.5)
        self.space: SearchSpace = transformer_space(
            enc_dims, dec_dims, ffn, hd, encoder_layers, dec_layers, ende
        )
        self.active_arch: Arch = self.space.largest()
        self.set_max()

    def _encoder_layers(self) -> list[ElasticEncoderLayer]:
        return list(self.encoder_layers)  # type: ignore[arg-type]

    def _decoder_layers(self) -> list[ElasticDecoderLayer]:
        return list(self.decoder_layers)  # type: ignore[arg-type]

    # --- verbs ---------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Constructor arguments as plain Python: `TransformerSupernet(**config())` rebuilds it."""
        return {k: list(v) if isinstance(v, list) else v for k, v in self._config.items()}

    def set_active(self, arch: Mapping[str, Any]) -> Arch:
        """Make `arch` the running SubTransformer (a SpaceError names any value outside)."""
        arch = self.space.arch(arch)
        cfg = self._config
        enc, dec = arch["enc_embed"], arch["dec_embed"]
        scale = cfg["scale_dropout"]
        enc_drop = cfg["dropout"] * (enc / cfg["encoder_embed_dims"][-1] if scale else 1.0)
        dec_drop = cfg["dropout"] * (dec / cfg["decoder_embed_dims"][-1] if scale else 1.0)
        self.enc_dim, self.dec_dim = enc, dec
        self.enc_dropout, self.dec_dropout = enc_drop, dec_drop
        for i, layer in enumerate(self._encoder_layers(), start=1):
            layer.set_active(enc, arch[f"enc_l{i}_ffn"], arch[f"enc_l{i}_heads"], enc_drop)
        self.num_decoder_layers = arch["dec_layers"]
        for i in range(1, self.num_decoder_layers + 1):
            self._decoder_layers()[i - 1].set_active(
                dec,
                enc,
                arch[f"dec_l{i}_ffn"],
                arch[f"dec_l{i}_heads"],
                arch[f"dec_l{i}_ende_heads"],
                arch[f"dec_l{i}_ende"],
                dec_drop,
            )
        self.encoder_keep = max(
            arch[f"dec_l{i}_ende"] for i in range(1, self.num_decoder_layers + 1)
        )
        if self.encoder_norm is not None and self.decoder_norm is not None:
            self.encoder_norm.set_active(enc)
            self.decoder_norm.set_active(dec)
        if self.output_proj is not None:
            self.output_proj.set_active(in_features=dec)
        self.active_arch = arch
        return arch

    @torch.no_grad()
    def export_subnet(self, arch: Mapping[str, Any] | None = None) -> SubTransformer:
        """A standalone static copy of `arch` (default: the active one); the active arch stays."""
        previous = self.active_arch
        arch = self.set_active(previous if arch is None else arch)
        try:
            enc, dec = arch["enc_embed"], arch["dec_embed"]
            if self.src_embed is self.tgt_embed:
                src_embed = tgt_embed = self.src_embed.to_static(max(enc, dec))
            else:
                src_embed = self.src_embed.to_static(enc)
                tgt_embed = self.tgt_embed.to_static(dec)
            sub = SubTransformer(
                src_embed,
                tgt_embed,
                [layer.to_static() for layer in self._encoder_layers()],
                [layer.to_static() for layer in self._decoder_layers()[: arch["dec_layers"]]],
                None if self.encoder_norm is None else self.encoder_norm.to_static(),
                None if self.decoder_norm is None else self.decoder_norm.to_static(),
                None if self.output_proj is None else self.output_proj.to_static(),
                enc_dim=enc,
                dec_dim=dec,
                enc_dropout=self.enc_dropout,
                dec_dropout=self.dec_dropout,
                pad_index=self.pad_index,
                bos_index=self.bos_index,
                eos_index=self.eos_index,
                max_positions=self.max_positions,
                conventions=self.conventions,
            )
        finally:
            self.set_active(previous)
        return sub.train(self.training)

    def latency_workload(self, batch_size: int = 1) -> TranslationWorkload:
        """What latency means for this supernet: HAT's one-sentence beam-5 decoding."""
        return TranslationWorkload(batch_size=batch_size)

    def latency_keys(self, arch: Mapping[str, Any], batch_size: int = 1) -> list[str]:
        """Latency-table keys of `arch`'s parts (see `latency_chain`)."""
        workload = self.latency_workload(batch_size)
        return translation_part_keys(self._config, self.space.arch(arch), workload)

    def latency_chain(
        self, arch: Mapping[str, Any], batch_size: int = 1, device: str = "cpu"
    ) -> TranslationPartsChain:
        """The latency workload of `arch`'s exported subnet, timed layer by layer."""
        arch = self.space.arch(arch)
        model = self.export_subnet(arch).eval().to(device)
        return TranslationPartsChain(model, self.latency_workload(batch_size)(model, arch))

    # --- analytic cost ---------------------------------------------------------------------------
    def macs(self, arch: Mapping[str, Any], src_len: int = 30, tgt_len: int = 30) -> int:
        """Multiply-accumulates of one teacher-forced sentence pair (batch 1)."""
        return transformer_macs(self._config, self.space.arch(arch), src_len, tgt_len)

    def macs_parts(
        self, arch: Mapping[str, Any], src_len: int = 30, tgt_len: int = 30
    ) -> dict[str, int]:
        """`macs` split by where a translation runs them (see `transformer_macs_parts`)."""
        return transformer_macs_parts(self._config, self.space.arch(arch), src_len, tgt_len)

    def params(self, arch: Mapping[str, Any]) -> int:
        """Parameters the SubTransformer uses (shared tables counted once)."""
        return transformer_params(self._config, self.space.arch(arch))
