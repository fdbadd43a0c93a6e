"""Analytic MACs and parameter counts of a SubTransformer, from its arch alone.

MACs count every matrix product of a teacher-forced forward of one sentence pair (batch 1):
the Q/K/V/output projections, the attention scores and weighted sums, the FFNs and the output
projection; embedding look-ups, LayerNorms, softmax and bias additions are not counted (the
same convention as `torch.utils.flop_counter`, whose FLOPs are 2 × these MACs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _attention_macs(t_q: int, t_kv: int, q_in: int, kv_in: int, qkv: int) -> int:
    projections = t_q * q_in * qkv + 2 * t_kv * kv_in * qkv + t_q * qkv * q_in
    return projections + 2 * t_q * t_kv * qkv


def transformer_macs_parts(
    config: Mapping[str, Any], arch: Mapping[str, Any], src_len: int, tgt_len: int
) -> dict[str, int]:
    """`transformer_macs` by where they run in a translation: `encoder` (once per sentence),
    `memory` (the encoder-decoder keys/values, once per sentence and beam), `decoder` (the rest
    of the decoder layers, every step and beam) and `output` (the vocabulary projection, every
    step and beam). A latency model weighs them differently: a beam search repeats the last
    two per beam."""
    qkv, enc, dec = config["qkv_dim"], arch["enc_embed"], arch["dec_embed"]
    s, t = src_len, tgt_len
    encoder = decoder = memory = 0
    for i in range(1, config["encoder_layers"] + 1):
        encoder += _attention_macs(s, s, enc, enc, qkv) + 2 * s * enc * arch[f"enc_l{i}_ffn"]
    for i in range(1, arch["dec_layers"] + 1):
        m = s * arch[f"dec_l{i}_ende"]
        keys_values = 2 * m * enc * qkv
        memory += keys_values
        decoder += _attention_macs(t, t, dec, dec, qkv) + 2 * t * dec * arch[f"dec_l{i}_ffn"]
        decoder += _attention_macs(t, m, dec, enc, qkv) - keys_values
    output = t * dec * config["tgt_vocab_size"]
    return {"encoder": encoder, "memory": memory, "decoder": decoder, "output": output}


def transformer_macs(
    config: Mapping[str, Any], arch: Mapping[str, Any], src_len: int, tgt_len: int
) -> int:
    """MACs of `arch` for a source of `src_len` and a target prefix of `tgt_len` tokens."""
    return sum(transformer_macs_parts(config, arch, src_len, tgt_len).values())


def _attention_params(q_in: int, kv_in: int, qkv: int) -> int:
    return (q_in * qkv + qkv) + 2 * (kv_in * qkv + qkv) + (qkv * q_in + q_in)


def transformer_params(config: Mapping[str, Any], arch: Mapping[str, Any]) -> int:
    """Parameters of `arch` (a shared embedding table counted once)."""
    qkv, enc, dec = config["qkv_dim"], arch["enc_embed"], arch["dec_embed"]
    src_v, tgt_v = config["src_vocab_size"], config["tgt_vocab_size"]
    if config["share_all_embeddings"]:
        total = tgt_v * max(enc, dec)
    else:
        total = src_v * enc + tgt_v * dec
        if not config["share_decoder_input_output_embed"]:
            total += tgt_v * dec
    for i in range(1, config["encoder_layers"] + 1):
        ffn = arch[f"enc_l{i}_ffn"]
        total += _attention_params(enc, enc, qkv) + 2 * 2 * enc + 2 * enc * ffn + ffn + enc
    for i in range(1, arch["dec_layers"] + 1):
        ffn = arch[f"dec_l{i}_ffn"]
        total += _attention_params(dec, dec, qkv) + _attention_params(dec, enc, qkv)
        total += 3 * 2 * dec + 2 * dec * ffn + ffn + dec
    if config["normalize_before"]:
        total += 2 * enc + 2 * dec
    return total
