"""The Transformer supernet: its space, front-sliced weight sharing, export, decoding and cost."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from supernet.errors import ConfigError
from supernet.ops.elastic_attention import MultiheadAttention
from supernet.space import SpaceError
from supernet.transformer.beam import beam_search, greedy_decode
from supernet.transformer.errors import SequenceTooLongError
from supernet.transformer.model import TransformerSupernet
from tests.supernet.tiny_transformer import TINY_WIDTHS

TINY = dict(TINY_WIDTHS, src_vocab_size=40, tgt_vocab_size=40, max_positions=32)


@pytest.fixture
def supernet() -> TransformerSupernet:
    torch.manual_seed(0)
    return TransformerSupernet(**TINY).eval()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run fastest on one thread, especially on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _batch(seed: int = 0, bsz: int = 3, src_len: int = 7, tgt_len: int = 6):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, 40, (bsz, src_len), generator=g)
    src[:, -1] = 2
    src[0, 4:] = 1  # a padded sentence
    src[0, 3] = 2
    prev = torch.randint(4, 40, (bsz, tgt_len), generator=g)
    prev[:, 0] = 0
    return src, prev


def _archs(space, n: int = 6):
    rng = np.random.default_rng(3)
    return [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(n)]


def test_space_has_the_hat_decisions() -> None:
    net = TransformerSupernet(src_vocab_size=10, tgt_vocab_size=10)
    space = net.space
    assert space.name == "transformer"
    assert space.decision("enc_embed").options == (512, 640)
    assert space.decision("enc_l6_ffn").options == (1024, 2048, 3072)
    assert space.decision("dec_l3_ende_heads").options == (4, 8)
    assert space.decision("dec_layers").options == (1, 2, 3, 4, 5, 6)
    assert space.decision("dec_l4_ende").options == (1, 2, 3)
    assert space.decision("dec_l4_ende").active_when == ("dec_layers", 4)
    assert space.decision("dec_l1_ffn").active_when is None
    names = [n.name for n in space.nodes]
    assert names[:3] == ["enc_embed", "dec_embed", "enc_l1"]
    assert len(names) == 2 + 6 + 6
    optional = [n.name for n in space.nodes if n.optional]
    assert optional == [f"dec_l{i}" for i in range(2, 7)]
    assert len(space.nodes[-1].candidates) == 3 * 2 * 2 * 3


def test_node_choices_compose_round_trip(supernet: TransformerSupernet) -> None:
    space = supernet.space
    for arch in _archs(space, 20):
        assert space.compose(space.node_choices(arch), base=arch) == arch


def test_options_outside_the_space_are_a_clear_error(supernet: TransformerSupernet) -> None:
    arch = supernet.space.largest().replace(enc_l1_ffn=4096)
    with pytest.raises(SpaceError, match="enc_l1_ffn=4096 is outside the space"):
        supernet.set_active(arch)
    with pytest.raises(SpaceError, match="missing decisions"):
        supernet.set_active({"enc_embed": 16})


def test_config_rebuilds_the_same_supernet(supernet: TransformerSupernet) -> None:
    twin = TransformerSupernet(**supernet.config())
    assert twin.space.to_config() == supernet.space.to_config()
    shapes = {k: v.shape for k, v in supernet.state_dict().items()}
    assert {k: v.shape for k, v in twin.state_dict().items()} == shapes
    assert all(isinstance(v, (int, float, bool, list)) for v in supernet.config().values())


def test_bad_configurations_are_rejected() -> None:
    with pytest.raises(ConfigError, match="one joint dictionary"):
        TransformerSupernet(**{**TINY, "tgt_vocab_size": 41, "share_all_embeddings": True})
    with pytest.raises(ConfigError, match="divide qkv_dim"):
        TransformerSupernet(**{**TINY, "heads": [3]})
    with pytest.raises(ConfigError, match="encoder layers"):
        TransformerSupernet(**{**TINY, "ende_layers": [1, 4]})


def test_sample_is_seeded(supernet: TransformerSupernet) -> None:
    a = [supernet.sample(np.random.default_rng(7)) for _ in range(2)]
    assert a[0] == a[1] == supernet.active_arch


@pytest.mark.parametrize("share_all", [False, True])
def test_exported_subnet_equals_active_subnet(share_all: bool) -> None:
    torch.manual_seed(0)
    net = TransformerSupernet(**{**TINY, "share_all_embeddings": share_all}).eval()
    src, prev = _batch()
    for arch in _archs(net.space):
        net.set_active(arch)
        sub = net.export_subnet(arch).eval()
        torch.testing.assert_close(sub(src, prev), net(src, prev), rtol=1e-5, atol=1e-5)
        beams = [h.tokens for h in beam_search(net, src, beam_size=3)]
        assert [h.tokens for h in beam_search(sub, src, beam_size=3)] == beams
        assert net.active_arch == arch


def test_exported_subnet_is_static_and_sized(supernet: TransformerSupernet) -> None:
    arch = supernet.space.smallest()
    sub = supernet.export_subnet(arch)
    kinds = {type(m) for m in sub.modules()}
    assert not any(k.__name__.startswith("Elastic") for k in kinds)
    assert nn.Linear in kinds and nn.LayerNorm in kinds and nn.Embedding in kinds
    assert len(sub.decoder_layers) == arch["dec_layers"]
    assert sub.src_embed.weight.shape == (40, arch["enc_embed"])
    attn = sub.encoder_layers[0].self_attn
    assert isinstance(attn, MultiheadAttention) and attn.num_heads == arch["enc_l1_heads"]
    assert attn.q_proj.weight.shape == (16, arch["enc_embed"])  # Q/K/V width stays qkv_dim
    assert sum(p.numel() for p in sub.parameters()) == supernet.params(arch)


def test_small_subnets_train_front_slices_only(supernet: TransformerSupernet) -> None:
    supernet.train().set_min()
    src, prev = _batch()
    supernet(src, prev).sum().backward()
    fc1 = supernet.encoder_layers[0].fc1
    assert fc1.weight.grad[:32, :16].abs().sum() > 0
    assert fc1.weight.grad[32:].abs().sum() == 0 and fc1.weight.grad[:, 16:].abs().sum() == 0
    assert supernet.decoder_layers[1].fc1.weight.grad is None  # the second layer did not run
    emb = supernet.src_embed.weight.grad
    assert emb[:, 16:].abs().sum() == 0


def test_ende_attention_reads_the_last_encoder_layers(supernet: TransformerSupernet) -> None:
    arch = supernet.space.largest().replace(dec_l1_ende=3, dec_l2_ende=1)
    supernet.set_active(arch)
    src, _ = _batch()
    out = supernet.encode(src)
    assert len(out.states) == 3
    memory, mask = out.memory(3)
    assert memory.shape[1] == 3 * src.shape[1] and mask.shape == (src.shape[0], 3 * src.shape[1])
    torch.testing.assert_close(memory[:, -src.shape[1] :], out.states[-1])


def test_incremental_decoding_matches_full_prefix(supernet: TransformerSupernet) -> None:
    src, prev = _batch(seed=1)
    for arch in _archs(supernet.space, 3):
        supernet.set_active(arch)
        encoder_out = supernet.encode(src)
        full = supernet.decode(prev, encoder_out)
        cache = supernet.new_cache()
        steps = [
            supernet.decode(prev[:, : t + 1], encoder_out, cache) for t in range(prev.shape[1])
        ]
        torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)
        fast = beam_search(supernet, src, beam_size=4, incremental=True)
        slow = beam_search(supernet, src, beam_size=4, incremental=False)
        assert [h.tokens for h in fast] == [h.tokens for h in slow]
        assert [h.score for h in fast] == pytest.approx([h.score for h in slow], abs=1e-5)


def test_beam_one_is_greedy(supernet: TransformerSupernet) -> None:
    src, _ = _batch(seed=2, bsz=5)
    for arch in _archs(supernet.space, 3):
        supernet.set_active(arch)
        greedy = greedy_decode(supernet, src)
        assert [h.tokens for h in beam_search(supernet, src, beam_size=1)] == greedy
        assert greedy == greedy_decode(supernet, src, incremental=False)


def test_beam_search_respects_the_length_limit(supernet: TransformerSupernet) -> None:
    src, _ = _batch()
    hyps = beam_search(supernet, src, beam_size=2, max_len_a=0.0, max_len_b=3)
    assert all(len(h.tokens) <= 3 for h in hyps)


def test_long_inputs_are_a_clear_error(supernet: TransformerSupernet) -> None:
    src = torch.full((1, 33), 5)
    with pytest.raises(SequenceTooLongError, match="exceeds max_positions=32"):
        supernet.encode(src)


@pytest.mark.parametrize(("src_len", "tgt_len"), [(7, 5), (12, 9)])
def test_analytic_macs_match_the_flop_counter(
    supernet: TransformerSupernet, src_len: int, tgt_len: int
) -> None:
    src = torch.randint(4, 40, (1, src_len))
    prev = torch.randint(4, 40, (1, tgt_len))
    for arch in _archs(supernet.space, 4):
        sub = supernet.export_subnet(arch).eval()
        with FlopCounterMode(display=False) as counter:
            sub(src, prev)
        assert counter.get_total_flops() == 2 * supernet.macs(arch, src_len, tgt_len)


def test_macs_parts_split_where_a_translation_runs_them(supernet: TransformerSupernet) -> None:
    """Encoder, the encoder-decoder keys/values (the encoder graph of a device kit computes
    both), decoder layers and output projection: counted as the flop counter counts them."""
    from supernet.transformer.onnx_decoding import EncoderGraph

    src = torch.randint(4, 40, (1, 7))
    for arch in _archs(supernet.space, 4):
        parts = supernet.macs_parts(arch, 7, 5)
        assert sum(parts.values()) == supernet.macs(arch, 7, 5)
        assert parts["output"] == 5 * arch["dec_embed"] * 40
        sub = supernet.export_subnet(arch).eval()
        with FlopCounterMode(display=False) as counter:
            sub.encode(src)
        assert counter.get_total_flops() == 2 * parts["encoder"]
        with FlopCounterMode(display=False) as counter:
            EncoderGraph(sub)(src)
        assert counter.get_total_flops() == 2 * (parts["encoder"] + parts["memory"])


def test_hat_scale_cost_is_plausible() -> None:
    net = TransformerSupernet(src_vocab_size=32000, tgt_vocab_size=32000, share_all_embeddings=True)
    largest, smallest = net.space.largest(), net.space.smallest()
    assert net.params(largest) > 3 * net.params(smallest) / 2
    assert net.macs(largest) > 2.5 * net.macs(smallest)
    assert 70e6 < net.params(largest) < 100e6  # embed 640, 6 + 6 layers, FFN 3072


def test_latency_workload_decodes_a_fixed_number_of_steps(supernet: TransformerSupernet) -> None:
    workload = supernet.latency_workload(batch_size=2)
    assert workload.settings()["beam_size"] == 5
    arch = supernet.space.smallest()
    hyps = workload(supernet.export_subnet(arch).eval(), arch)()
    assert len(hyps) == 2 and all(len(h.tokens) == 29 for h in hyps)
