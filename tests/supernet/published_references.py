"""The publishers' own code as references, with random weights saved in their file formats.

OFA: the `ofa` package's `OFAMobileNetV3`. HAT: DyNAS-T's copy of HAT's SuperTransformer
(`dynast/supernetwork/machine_translation/transformer_supernetwork.py`), imported alone: the
`dynast` package's `__init__` pulls in optional search back-ends, so its package paths are
registered in `sys.modules` first. Tests skip with the reason when a reference is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F


# --- Once-for-All -------------------------------------------------------------------------------
def ofa_network(width: float, seed: int = 0, **space: Any) -> Any:
    """`OFAMobileNetV3` (the published space unless `space` says otherwise) with random
    weights, kernel-transform matrices and BatchNorm statistics."""
    networks = pytest.importorskip(
        "ofa.imagenet_classification.elastic_nn.networks",
        reason="the `ofa` package (dev extra) is the reference for OFA's MobileNetV3",
    )
    settings = {"ks_list": [3, 5, 7], "expand_ratio_list": [3, 4, 6], "depth_list": [2, 3, 4]}
    settings.update(space)
    torch.manual_seed(seed)
    net = networks.OFAMobileNetV3(n_classes=1000, dropout_rate=0, width_mult=width, **settings)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 2.0)
            elif name.endswith(("bn.weight", "bn.bn.weight")):
                tensor.uniform_(0.5, 1.5)
            elif name.endswith("_matrix"):
                tensor.add_(0.1 * torch.randn_like(tensor))
            else:
                tensor.normal_(0.0, 0.1)
    return net.eval()


def save_ofa(net: Any, path: Path, published_names: bool = True) -> Path:
    """Save as OFA publishes: `{"state_dict": ...}`, blocks' layers named `mobile_inverted_conv`."""
    state = net.state_dict()
    if published_names:
        state = {
            re.sub(r"^(blocks\.\d+)\.conv\.", r"\1.mobile_inverted_conv.", k): v
            for k, v in state.items()
        }
    torch.save({"state_dict": state}, path)
    return path


# --- HAT ----------------------------------------------------------------------------------------
HAT_MODULE = "dynast.supernetwork.machine_translation.transformer_supernetwork"


def hat_reference() -> Any:
    """DyNAS-T's `transformer_supernetwork` module (HAT's SuperTransformer), or a skip."""
    loaded = sys.modules.get(HAT_MODULE)
    if loaded is not None:
        return loaded
    pytest.importorskip("fairseq", reason="HAT's reference SuperTransformer needs fairseq")
    spec = importlib.util.find_spec("dynast")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("dynast (dev extra: pip install --no-deps dynast==1.6.0) holds HAT's code")
    root = spec.submodule_search_locations[0]
    for name, sub in (
        ("dynast", ""),
        ("dynast.supernetwork", "supernetwork"),
        ("dynast.supernetwork.machine_translation", "supernetwork/machine_translation"),
    ):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(Path(root) / sub)]
            sys.modules[name] = package
    from dynast.supernetwork.machine_translation import transformer_supernetwork

    return transformer_supernetwork


def _dictionary(size: int) -> Any:
    from fairseq.data import Dictionary

    dictionary = Dictionary()
    for i in range(size - len(dictionary)):
        dictionary.add_symbol(f"w{i}")
    return dictionary


def hat_network(
    vocab: int, ffn: int, heads: int, shared: bool, seed: int = 0, tgt_vocab: int | None = None
) -> tuple[Any, Any]:
    """HAT's encoder and decoder at width 640, 6 + 6 layers, with random weights.

    `shared=False` gives separate source and target tables (of `tgt_vocab` target symbols)
    and an output matrix of its own (`decoder.embed_out`), as HAT's IWSLT SuperTransformer has.
    """
    ts = hat_reference()
    dictionary = _dictionary(vocab)
    target = dictionary if shared or tgt_vocab is None else _dictionary(tgt_vocab)
    torch.manual_seed(seed)
    enc_cfg = {"encoder_embed_dim": 640, "encoder_layers": 6, "encoder_attention_heads": heads,
               "encoder_ffn_embed_dim": ffn, "encoder_embed_path": None}
    dec_cfg = {"decoder_embed_dim": 640, "decoder_layers": 6, "decoder_attention_heads": heads,
               "decoder_ffn_embed_dim": ffn}
    src_table = ts.Embedding(len(dictionary), 640, dictionary.pad())
    tgt_table = src_table if shared else ts.Embedding(len(target), 640, target.pad())
    encoder = ts.TransformerEncoder(enc_cfg, dictionary, src_table)
    decoder = ts.TransformerDecoder(dec_cfg, target, tgt_table)
    if not shared:
        decoder.share_input_output_embed = False
        decoder.embed_out = torch.nn.Parameter(torch.randn(len(target), 640) * 640**-0.5)
    with torch.no_grad():
        for p in list(encoder.parameters()) + list(decoder.parameters()):
            p.add_(0.05 * torch.randn_like(p))
    return encoder.eval(), decoder.eval()


def save_hat(encoder: Any, decoder: Any, path: Path) -> Path:
    """Save as fairseq (HAT) does: the state dict under `model`, the arguments and training
    state (numpy scalars among them) beside it."""
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    state.update({f"decoder.{k}": v for k, v in decoder.state_dict().items()})
    args = argparse.Namespace(arch="transformersuper", encoder_embed_dim=640)
    extra = {"val_loss": np.float64(4.25), "train_iterator": {"epoch": 3}}
    torch.save({"args": args, "model": state, "extra_state": extra}, path)
    return path


@torch.no_grad()
def hat_log_probs(
    encoder: Any, decoder: Any, src: torch.Tensor, prev: torch.Tensor
) -> torch.Tensor:
    """Teacher-forced log-probabilities of HAT's model (`prev` starts with end-of-sentence)."""
    out = encoder(src, None)
    return F.log_softmax(decoder(prev, out)[0].float(), dim=-1)


@torch.no_grad()
def hat_greedy(
    encoder: Any, decoder: Any, src: torch.Tensor, max_len: int, pad: int, bos: int, eos: int
) -> list[list[int]]:
    """Arg-max decoding with HAT's model, recomputing the whole prefix at every step; the
    same rules as ours (no pad or bos, no end-of-sentence first, forced at `max_len`)."""
    out = encoder(src, None)
    tokens = torch.full((src.shape[0], 1), eos, dtype=torch.long)
    for step in range(max_len + 1):
        lprobs = F.log_softmax(decoder(tokens, out)[0][:, -1].float(), dim=-1)
        lprobs[:, [pad, bos]] = float("-inf")
        if step == 0:
            lprobs[:, eos] = float("-inf")
        if step >= max_len:
            lprobs[:, [i for i in range(lprobs.shape[1]) if i != eos]] = float("-inf")
        tokens = torch.cat([tokens, lprobs.argmax(-1, keepdim=True)], dim=1)
        if bool(tokens[:, 1:].eq(eos).any(dim=1).all()):
            break
    rows = [row[1:] for row in tokens.tolist()]
    return [row[: row.index(eos)] if eos in row else row for row in rows]
