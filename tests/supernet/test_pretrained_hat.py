"""HAT's published SuperTransformers load into ours and compute what HAT computes.

HAT's own SuperTransformer (DyNAS-T's copy of it) gets random weights, is saved as a fairseq
checkpoint and loaded through `load_pretrained(..., path=...)`. For random SubTransformers
(embed widths, FFN widths, heads per layer, 1-6 decoder layers, attention to the last 1-3
encoder layers) teacher-forced log-probabilities equal HAT's and greedy outputs are identical.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from supernet.pretrained import load_pretrained
from supernet.transformer.beam import greedy_decode
from supernet.transformer.hat_weights import arch_from_hat, hat_config
from supernet.weight_import import WeightMismatchError
from tests.supernet.published_references import (
    hat_greedy,
    hat_log_probs,
    hat_network,
    save_hat,
)

VOCAB, PAD, BOS, EOS = 48, 1, 0, 2
TOLERANCE = 1e-4
# right-padded sources ending in end-of-sentence; targets as fed to the decoder, which our
# data start with beginning-of-sentence and fairseq's with end-of-sentence
SRC = torch.tensor([[5, 9, 12, 7, 33, 2], [8, 11, 20, 2, 1, 1], [40, 6, 2, 1, 1, 1]])
PREV = torch.tensor([[BOS, 14, 6, 19, 25, 9], [BOS, 17, 30, 44, 1, 1], [BOS, 21, 1, 1, 1, 1]])
MAX_LEN_A, MAX_LEN_B = 1.0, 2


def _compare(encoder: Any, decoder: Any, ours: Any, archs: list[Any]) -> float:
    """Largest log-probability difference over `archs`; greedy outputs must be identical."""
    theirs_prev = PREV.clone()
    theirs_prev[:, 0] = EOS
    real = PREV.ne(PAD)
    max_len = int(MAX_LEN_A * int(SRC.ne(PAD).sum(1).max()) + MAX_LEN_B)
    worst = 0.0
    for arch in archs:
        config = hat_config(arch, 6, 6)
        encoder.set_sample_config(config)
        decoder.set_sample_config(config)
        ours.set_active(arch)
        with torch.no_grad():
            mine = torch.log_softmax(ours(SRC, PREV).float(), dim=-1)
        diff = float((mine - hat_log_probs(encoder, decoder, SRC, theirs_prev)).abs()[real].max())
        assert diff < TOLERANCE, f"{arch.arch_id}: log-probabilities differ by {diff:.2e}"
        worst = max(worst, diff)
        expected = hat_greedy(encoder, decoder, SRC, max_len, PAD, BOS, EOS)
        assert greedy_decode(ours, SRC, MAX_LEN_A, MAX_LEN_B) == expected, arch.arch_id
    return worst


def _archs(space: Any, n: int) -> list[Any]:
    rng = np.random.default_rng(0)
    return [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(n)]


@pytest.fixture(scope="module")
def wmt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Any]:
    """HAT's WMT SuperTransformer (space0, shared tables) and ours loaded from its file."""
    encoder, decoder = hat_network(VOCAB, ffn=3072, heads=8, shared=True)
    path = save_hat(encoder, decoder, tmp_path_factory.mktemp("hat") / "wmt.pt")
    return encoder, decoder, load_pretrained("hat_wmt14ende", path=str(path))


def test_wmt_subtransformers_equal_hat(wmt: tuple[Any, Any, Any], one_thread: None) -> None:
    encoder, decoder, ours = wmt
    archs = _archs(ours.space, 20)
    assert {a["dec_layers"] for a in archs} >= {1, 6}
    assert {a["dec_l1_ende"] for a in archs} == {1, 2, 3}
    worst = _compare(encoder, decoder, ours, archs)
    print(f"\nhat_wmt14ende: largest log-probability difference {worst:.2e} over {len(archs)}")


def test_iwslt_subtransformers_equal_hat(tmp_path: Path, one_thread: None) -> None:
    """IWSLT's space1: separate tables and an output matrix of its own (`decoder.embed_out`)."""
    encoder, decoder = hat_network(VOCAB, ffn=2048, heads=4, shared=False, seed=1, tgt_vocab=52)
    path = save_hat(encoder, decoder, tmp_path / "iwslt.pt")
    ours = load_pretrained("hat_iwslt14deen", path=str(path))
    assert ours.output_proj is not None and ours.src_embed is not ours.tgt_embed
    assert ours.config()["tgt_vocab_size"] == 52
    worst = _compare(encoder, decoder, ours, _archs(ours.space, 4))
    print(f"\nhat_iwslt14deen: largest log-probability difference {worst:.2e}")


def test_hat_config_round_trip(wmt: tuple[Any, Any, Any]) -> None:
    ours = wmt[2]
    arch = ours.space.sample(np.random.default_rng(3))
    assert arch_from_hat(ours.space, hat_config(arch, 6, 6)) == arch


def test_published_subtransformer_yaml_reads() -> None:
    """A SubTransformer file of HAT's `configs/*/subtransformer/` (dashed keys)."""
    from supernet.pretrained import PUBLISHED
    from supernet.transformer.space import transformer_space

    cfg = PUBLISHED["hat_wmt14ende"].supernet
    space = transformer_space(cfg["encoder_embed_dims"], cfg["decoder_embed_dims"],
                              cfg["ffn_dims"], cfg["heads"], 6, cfg["decoder_layers"],
                              cfg["ende_layers"])
    published = {
        "encoder-embed-dim-subtransformer": 512,
        "decoder-embed-dim-subtransformer": 512,
        "encoder-ffn-embed-dim-all-subtransformer": [3072] * 6,
        "decoder-ffn-embed-dim-all-subtransformer": [2048, 2048, 3072, 3072, 3072],
        "encoder-layer-num-subtransformer": 6,
        "decoder-layer-num-subtransformer": 5,
        "encoder-self-attention-heads-all-subtransformer": [8, 4, 8, 8, 8, 4],
        "decoder-self-attention-heads-all-subtransformer": [8, 8, 8, 4, 8],
        "decoder-ende-attention-heads-all-subtransformer": [4, 8, 8, 8, 8],
        "decoder-arbitrary-ende-attn-all-subtransformer": [-1, 1, 1, 1, -1],
    }
    arch = arch_from_hat(space, published)
    assert (arch["dec_layers"], arch["dec_l2_ende"], arch["dec_l5_ende"]) == (5, 2, 1)
    assert arch["enc_l6_heads"] == 4 and arch["dec_l1_ffn"] == 2048


def test_unshared_file_for_shared_space_is_refused(tmp_path: Path) -> None:
    encoder, decoder = hat_network(VOCAB, ffn=3072, heads=8, shared=False)
    path = save_hat(encoder, decoder, tmp_path / "unshared.pt")
    with pytest.raises(WeightMismatchError, match="two tables differ"):
        load_pretrained("hat_wmt14ende", path=str(path))


def test_iwslt_file_for_wmt_names_the_tensor(tmp_path: Path) -> None:
    encoder, decoder = hat_network(VOCAB, ffn=2048, heads=4, shared=True)
    path = save_hat(encoder, decoder, tmp_path / "ffn2048.pt")
    with pytest.raises(WeightMismatchError, match=r"'encoder\.layers\.0\.fc1\.weight' has shape"):
        load_pretrained("hat_wmt14ende", path=str(path))
