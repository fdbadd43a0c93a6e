"""HAT's published SuperTransformer weights under our names, and HAT's SubTransformer configs.

HAT's checkpoints are fairseq checkpoints: the state dict sits under `model`, with fairseq's
names (`encoder.layers.3.self_attn.in_proj_weight`, `decoder.layers.0.encoder_attn_layer_norm`,
...). Attention keeps Q, K and V in one `in_proj_weight` of 3 × qkv_dim rows (separate
`q/k/v_proj_weight` when query and key widths differ); our attention holds three
projections, filled from the row blocks. HAT's SubTransformer configs are nested dicts of
per-layer lists (`decoder_arbitrary_ende_attn`: -1, 1, 2 = the last 1, 2, 3 encoder layers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from supernet.space import Arch, SearchSpace
from supernet.weight_import import Take

# our module names → fairseq's, inside one layer
_LAYER = {
    "attn_norm.": "self_attn_layer_norm.",
    "cross_norm.": "encoder_attn_layer_norm.",
    "ffn_norm.": "final_layer_norm.",
    "fc1.": "fc1.",
    "fc2.": "fc2.",
}
_ATTENTION = {"self_attn": "self_attn", "cross_attn": "encoder_attn"}
# fairseq buffers that carry no weights
IGNORED_SUFFIXES = (".version", "embed_positions._float_tensor", "embed_positions.weights")
# HAT's `decoder_arbitrary_ende_attn` value for "attend to the last n encoder layers"
_ENDE = {1: -1, 2: 1, 3: 2}


def ignored_keys(state: Mapping[str, torch.Tensor]) -> list[str]:
    """The fairseq bookkeeping tensors of `state` (version counters, position caches)."""
    return [key for key in state if key.endswith(IGNORED_SUFFIXES)]


def _attention(ours: str, theirs: str, param: str, qkv: int, state: Mapping[str, Any]) -> Take:
    """Take for `{ours}.{q,k,v,out}_proj.{weight,bias}` from fairseq's attention `theirs`."""
    proj, kind = param.split(".")
    if proj == "out_proj":
        return Take(f"{theirs}.out_proj.{kind}")
    part = "qkv".index(proj[0])
    rows = (part * qkv, (part + 1) * qkv)
    if kind == "bias":
        return Take(f"{theirs}.in_proj_bias", rows)
    separate = f"{theirs}.{proj}_weight"
    if separate in state:  # query and key/value widths differ: no fused matrix
        return Take(separate)
    return Take(f"{theirs}.in_proj_weight", rows)


def _layer_take(rest: str, prefix: str, qkv: int, state: Mapping[str, Any]) -> Take:
    module, _, param = rest.partition(".")
    if module in _ATTENTION:
        return _attention(module, f"{prefix}.{_ATTENTION[module]}", param, qkv, state)
    for ours, theirs in _LAYER.items():
        if rest.startswith(ours):
            return Take(f"{prefix}.{theirs}{rest[len(ours):]}")
    raise KeyError(f"no HAT name for {prefix}: {rest!r}")


def hat_plan(keys: list[str], qkv_dim: int, state: Mapping[str, Any]) -> dict[str, Take]:
    """Where each of our keys comes from in a HAT (fairseq) state dict."""
    fixed = {
        "src_embed.weight": "encoder.embed_tokens.weight",
        "tgt_embed.weight": "decoder.embed_tokens.weight",
        "output_proj.weight": "decoder.embed_out",
        "encoder_norm.weight": "encoder.layer_norm.weight",
        "encoder_norm.bias": "encoder.layer_norm.bias",
        "decoder_norm.weight": "decoder.layer_norm.weight",
        "decoder_norm.bias": "decoder.layer_norm.bias",
    }
    plan: dict[str, Take] = {}
    for key in keys:
        if key in fixed:
            plan[key] = Take(fixed[key])
            continue
        side, index, rest = key.split(".", 2)
        prefix = {"encoder_layers": "encoder", "decoder_layers": "decoder"}[side]
        plan[key] = _layer_take(rest, f"{prefix}.layers.{index}", qkv_dim, state)
    return plan


def hat_config(arch: Mapping[str, Any], encoder_layers: int, decoder_layers: int) -> dict:
    """HAT's `set_sample_config` dict for our `arch` (per-layer lists padded to full depth)."""
    layers = int(arch["dec_layers"])
    enc_range, dec_range = range(1, 1 + encoder_layers), range(1, 1 + decoder_layers)

    def dec(field: str, i: int) -> int:
        return int(arch[f"dec_l{min(i, layers)}_{field}"])

    return {
        "encoder": {
            "encoder_embed_dim": int(arch["enc_embed"]),
            "encoder_layer_num": encoder_layers,
            "encoder_ffn_embed_dim": [int(arch[f"enc_l{i}_ffn"]) for i in enc_range],
            "encoder_self_attention_heads": [int(arch[f"enc_l{i}_heads"]) for i in enc_range],
        },
        "decoder": {
            "decoder_embed_dim": int(arch["dec_embed"]),
            "decoder_layer_num": layers,
            "decoder_ffn_embed_dim": [dec("ffn", i) for i in dec_range],
            "decoder_self_attention_heads": [dec("heads", i) for i in dec_range],
            "decoder_ende_attention_heads": [dec("ende_heads", i) for i in dec_range],
            "decoder_arbitrary_ende_attn": [_ENDE[dec("ende", i)] for i in dec_range],
        },
    }


def arch_from_hat(space: SearchSpace, config: Mapping[str, Any]) -> Arch:
    """Our arch for a HAT SubTransformer config (`hat_config`'s layout, or the flat keys of
    HAT's published `subtransformer/*.yml` files with dashes or underscores)."""
    flat = {str(k).replace("-", "_"): v for k, v in config.items()}
    if "encoder" in flat:  # nested set_sample_config layout
        flat = {**dict(flat["encoder"]), **dict(flat["decoder"])}
    else:
        flat = {k.replace("_subtransformer", "").replace("_all", ""): v for k, v in flat.items()}
    ende = {v: k for k, v in _ENDE.items()}
    layers = int(flat["decoder_layer_num"])
    values: dict[str, Any] = {d.label: d.options[0] for d in space.decisions}  # inactive ones
    values.update(
        enc_embed=int(flat["encoder_embed_dim"]),
        dec_embed=int(flat["decoder_embed_dim"]),
        dec_layers=layers,
    )
    for i, (ffn, heads) in enumerate(
        zip(flat["encoder_ffn_embed_dim"], flat["encoder_self_attention_heads"], strict=True), 1
    ):
        values[f"enc_l{i}_ffn"], values[f"enc_l{i}_heads"] = int(ffn), int(heads)
    for i in range(1, layers + 1):
        values[f"dec_l{i}_ffn"] = int(flat["decoder_ffn_embed_dim"][i - 1])
        values[f"dec_l{i}_heads"] = int(flat["decoder_self_attention_heads"][i - 1])
        values[f"dec_l{i}_ende_heads"] = int(flat["decoder_ende_attention_heads"][i - 1])
        values[f"dec_l{i}_ende"] = ende[int(flat["decoder_arbitrary_ende_attn"][i - 1])]
    return space.arch(values)
