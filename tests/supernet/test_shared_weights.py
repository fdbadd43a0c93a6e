"""The fast path of weight sharing: one-node slicing, batched kernel transforms, cached weights.

Its gradients, BatchNorm statistics and outputs must equal those of the reference path (each
elastic op slicing its own weights), in training and eval mode, whether `.grad` exists or not.
"""

from __future__ import annotations

import contextlib
import copy
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from supernet.mobilenetv3 import MobileNetV3Supernet
from supernet.ops.elastic_depthwise import (
    ElasticDepthwiseConv2d,
    KernelTransforms,
    kernel_matrices,
)
from supernet.ops.shared_slices import Mapped, mapped_product, region, take
from tests.supernet.test_mobilenetv3 import TINY, scramble


@pytest.fixture(autouse=True)
def _threads(one_thread: None) -> None:
    return None


def tiny_net() -> MobileNetV3Supernet:
    torch.manual_seed(0)
    net = MobileNetV3Supernet(**{**TINY, "dropout": 0.0})
    scramble(net)
    return net


def reference(net: MobileNetV3Supernet, x: torch.Tensor) -> torch.Tensor:
    """The supernet's function with every elastic op slicing its own weights."""
    x = net.first_block(net.stem(x))
    for block in net._active_blocks:
        x = block(x)
    return net.head(x)


def archs(net: MobileNetV3Supernet, n: int) -> list:
    rng = np.random.default_rng(3)
    return [net.space.largest(), net.space.smallest(), *(net.space.sample(rng) for _ in range(n))]


@pytest.mark.parametrize("fresh", [True, False], ids=["fresh-grad", "accumulating"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_training_gradients_equal_reference(fresh: bool, channels_last: bool) -> None:
    """Sandwich-like steps: same grads and BN statistics as slicing op by op."""
    fast = tiny_net().train()
    ref = copy.deepcopy(fast)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    fast.to(memory_format=fmt)
    ref.to(memory_format=fmt)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 1, 16, 16, generator=g).contiguous(memory_format=fmt)
    y = torch.randint(0, 5, (4,), generator=g)
    for arch in archs(fast, 3):
        if fresh:
            fast.zero_grad(set_to_none=True)
            ref.zero_grad(set_to_none=True)
        for net, run in ((fast, fast), (ref, lambda t: reference(ref, t))):
            net.set_active(arch)
            F.cross_entropy(run(x), y).backward()
        for (name, p), q in zip(fast.named_parameters(), ref.parameters(), strict=True):
            assert (p.grad is None) == (q.grad is None), name
            if p.grad is not None:
                torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6, msg=name)
    for a, b in zip(fast.buffers(), ref.buffers(), strict=True):
        assert torch.equal(a, b)


def test_largest_subnet_slices_nothing() -> None:
    net = tiny_net().train()
    net.set_max()
    assert all(r is None for block in net._active_blocks for r in block.plan().regions)


def test_eval_weights_are_cached_and_refreshed() -> None:
    """Without gradients a block's weights are prepared once per arch, and again after any
    change to the weights (optimizer step, load_state_dict) or a new arch."""
    net = tiny_net().eval()
    arch = net.space.smallest()
    net.set_active(arch)
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        first = net(x)
        cached = [w.data_ptr() for w in net._active_blocks[0].cached_weights()]
        again = net(x)
    assert torch.equal(first, again)
    assert cached == [w.data_ptr() for w in net._active_blocks[0].cached_weights()]
    with torch.no_grad():  # an in-place update, as an optimizer makes
        net._active_blocks[0].depthwise.transform["7to5"].mul_(1.5)
        changed = net(x)
    assert not torch.equal(first, changed)
    with torch.no_grad():
        torch.testing.assert_close(changed, reference(net, x))
        torch.testing.assert_close(changed, net.export_subnet(arch).eval()(x))
    state = tiny_net().state_dict()
    net.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(net(x), first)


def test_no_grad_training_forward_equals_grad_forward() -> None:
    """Training mode without gradients (BN statistics only) uses the cache, same function."""
    net = tiny_net().train()
    net.set_active(net.space.sample(np.random.default_rng(0)))
    x = torch.randn(3, 1, 16, 16)
    other = copy.deepcopy(net)
    with torch.no_grad():
        a = net(x)
    b = other(x)
    torch.testing.assert_close(a, b.detach())
    for p, q in zip(net.buffers(), other.buffers(), strict=True):
        assert torch.equal(p, q)


def test_take_matches_plain_slicing() -> None:
    """Gradients of `take` equal those of indexing, fresh or accumulated, for any layout."""
    torch.manual_seed(0)
    w = torch.randn(6, 5, 3, 3).contiguous(memory_format=torch.channels_last).requires_grad_()
    b = torch.randn(6, requires_grad=True)
    idx = [(slice(0, 4), slice(1, 5), slice(1, 2)), (slice(0, 3),)]
    regions = [region(w, idx[0]), region(b, idx[1])]
    for step in range(2):  # first .grad is None, then it exists
        sliced = take([w, b], regions)
        assert sliced[0].is_contiguous()
        (sliced[0].square().sum() + sliced[1].sum()).backward()
        assert w.grad is not None and b.grad is not None
        expected_w = torch.zeros_like(w)
        expected_w[idx[0]] = 2 * w.detach()[idx[0]] * (step + 1)
        torch.testing.assert_close(w.grad, expected_w)
        torch.testing.assert_close(b.grad[:3], torch.full((3,), float(step + 1)))
        assert b.grad[3:].eq(0).all()
        assert w.grad.stride() == w.stride()


@pytest.mark.parametrize("crop", [False, True], ids=["leading-rows", "centre-crop"])
def test_mapped_slices_equal_plain_products(crop: bool) -> None:
    """A `Mapped` slice (rows times a matrix, in the slice node) has the values and gradients,
    for the weight and the matrix, of slicing and multiplying op by op."""
    torch.manual_seed(0)
    w = torch.randn(6, 1, 7, 7).contiguous(memory_format=torch.channels_last).requires_grad_()
    index = (slice(0, 4), slice(None), slice(1, 6), slice(1, 6)) if crop else (slice(0, 4),)
    width = 25 if crop else 49
    m = torch.randn(9, width, requires_grad=True)
    w_ref, m_ref = w.detach().clone().requires_grad_(), m.detach().clone().requires_grad_()
    target = torch.randn(4, 1, 3, 3)
    for _ in range(2):  # first .grad is None, then it exists
        (kernel,) = take([w], [region(w, index)], {0: Mapped(m, (4, 1, 3, 3))})
        ref = (w_ref[index].reshape(4, -1) @ m_ref.t()).view(4, 1, 3, 3)
        torch.testing.assert_close(kernel, ref)
        (kernel * target).sum().backward()
        (ref * target).sum().backward()
        torch.testing.assert_close(w.grad, w_ref.grad)
        torch.testing.assert_close(m.grad, m_ref.grad)
    assert w.grad is not None and w.grad.stride() == w.stride()
    with torch.no_grad():
        (plain,) = take([w], [region(w, index)], {0: Mapped(m, (4, 1, 3, 3))})
    torch.testing.assert_close(plain, ref.detach())


def test_take_leaves_grad_alone_under_autograd_grad_and_with_hooks() -> None:
    w = torch.randn(5, 4, requires_grad=True)
    w.grad = torch.ones_like(w)
    r = region(w, (slice(0, 2), slice(0, 3)))
    (gw,) = torch.autograd.grad(take([w], [r])[0].sum(), [w])
    assert torch.equal(w.grad, torch.ones_like(w))  # autograd.grad does not touch .grad
    assert gw[:2, :3].eq(1).all() and gw.sum() == 6
    seen = []
    w.register_hook(lambda g: seen.append(g.clone()))
    take([w], [r])[0].sum().backward()
    assert len(seen) == 1 and seen[0].sum() == 6  # the hook sees the whole gradient
    assert w.grad.sum() == w.numel() + 6


def test_take_accumulates_in_place_only_where_backward_would() -> None:
    w = torch.randn(5, 4, 3, 3, requires_grad=True)
    v = torch.randn(3, requires_grad=True)
    r = region(w, (slice(0, 2), slice(0, 3)))
    w.grad = torch.ones_like(w)
    (take([w], [r])[0].sum() + v.sum()).backward(inputs=[v])
    assert torch.equal(w.grad, torch.ones_like(w))  # left out by inputs=: untouched
    assert torch.equal(v.grad, torch.ones(3))
    # a .grad laid out unlike the weight gets the gradient through autograd, in its own layout
    w.grad = torch.ones_like(w).contiguous(memory_format=torch.channels_last)
    with pytest.warns(UserWarning, match="layout contract"):
        take([w], [r])[0].sum().backward()
    expected = torch.ones_like(w)
    expected[:2, :3] += 1
    assert torch.equal(w.grad, expected)
    w.grad = torch.ones_like(w)  # laid out like the weight: the slice is added in place
    before = w.grad.data_ptr()
    take([w], [r])[0].sum().backward()
    assert w.grad.data_ptr() == before and torch.equal(w.grad, expected)


def _depthwise_convs(kernels: tuple[int, ...]) -> list[ElasticDepthwiseConv2d]:
    """8-channel elastic depthwise convs, transforms moved off the identity, one per kernel."""
    torch.manual_seed(0)
    convs = [ElasticDepthwiseConv2d(8, (3, 5, 7)) for _ in kernels]
    with torch.no_grad():
        for conv in convs:
            for t in conv.transform.values():
                t.add_(0.1 * torch.randn_like(t))
    for conv, k in zip(convs, kernels, strict=True):
        conv.set_active(k)
    return convs


def test_batched_kernel_matrices_equal_one_by_one() -> None:
    convs = _depthwise_convs((3, 5, 3, 7))
    batched = kernel_matrices([c.transform_chain() for c in convs])
    for conv, m in zip(convs, batched, strict=True):
        single = conv.kernel_matrix()
        assert (m is None) == (single is None)
        if m is not None:
            torch.testing.assert_close(m, single)
            kernel = conv.active_weight(8)
            assert kernel.shape == (8, 1, conv.active_kernel, conv.active_kernel)


def _kernel_op_by_op(conv: ElasticDepthwiseConv2d, weight: torch.Tensor) -> torch.Tensor:
    """OFA's order: crop the centre, multiply by the step's transform, repeat."""
    src, channels = conv.max_kernel, weight.shape[0]
    for dst in conv.transform_sizes():
        s = (src - dst) // 2
        crop = weight[:, :, s : s + dst, s : s + dst].reshape(channels, -1)
        weight = (crop @ conv.transform[f"{src}to{dst}"].t()).view(channels, 1, dst, dst)
        src = dst
    return weight


def test_kernel_transforms_in_the_slice_node_equal_autograd() -> None:
    """`KernelTransforms` derives the kernels that cropping and multiplying step by step
    derives, and its hand-written gradients equal autograd's."""
    convs = _depthwise_convs((3, 5, 3, 5, 3))
    source = KernelTransforms([c.transform_chain() for c in convs])
    with torch.no_grad():
        matrices, saved = source.compute(source.inputs)
        for conv, m in zip(convs, matrices, strict=True):
            kernel = mapped_product(conv.weight.reshape(8, -1), m).reshape_as(
                _kernel_op_by_op(conv, conv.weight)
            )
            torch.testing.assert_close(kernel, _kernel_op_by_op(conv, conv.weight))
    grads: list[torch.Tensor | None] = [torch.randn_like(m) for m in matrices]
    grads[1] = None  # a slice without a gradient
    reference = kernel_matrices([c.transform_chain() for c in convs])  # with autograd
    used = [(r, g) for r, g in zip(reference, grads, strict=True) if g is not None]
    expected = torch.autograd.grad([r for r, _ in used], source.inputs, [g for _, g in used])
    got = source.gradients(saved, grads)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e)


def test_moved_supernet_trains_on_its_new_weights() -> None:
    """Slice layouts are kept per subnet; after `.to(dtype)` a training step reads and writes
    the converted weights."""
    net = tiny_net().train()
    arch = net.space.smallest()
    x, y = torch.randn(2, 1, 16, 16), torch.randint(0, 5, (2,))
    net.set_active(arch)
    F.cross_entropy(net(x), y).backward()
    net.zero_grad(set_to_none=True)
    net.to(torch.float64)
    net.set_active(arch)
    F.cross_entropy(net(x.double()), y).backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float64 for g in grads)
    block = net._active_blocks[0]
    assert block.depthwise.weight.grad is not None
    assert block.depthwise.weight.grad.abs().sum() > 0


def test_bf16_autocast_training_step() -> None:
    """The fast path under CPU autocast (trainer precision bf16-mixed): fp32 gradients."""
    net = tiny_net().train()
    net.set_active(net.space.sample(np.random.default_rng(1)))
    x, y = torch.randn(4, 1, 16, 16), torch.randint(0, 5, (4,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = F.cross_entropy(net(x), y)
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_plans_follow_moved_and_replaced_weights() -> None:
    net = tiny_net()
    net.set_active(net.space.smallest())
    block = net._active_blocks[0]
    net.to(torch.float64)
    assert block.plan().weights[0] is block.expand_conv.weight
    assert block.plan().weights[0].dtype == torch.float64
    net.load_state_dict({k: v.clone() for k, v in net.state_dict().items()}, assign=True)
    assert block.plan().weights[0] is block.expand_conv.weight
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), reference(net, x))
    assert isinstance(block.expand_conv.weight, nn.Parameter)


def test_state_dict_and_pickles_hold_plain_data(tmp_path) -> None:
    """Checkpoints load with weights_only=True; a pickled supernet rebuilds its plans."""
    net = tiny_net()
    net.set_active(net.space.smallest())
    torch.save(net.state_dict(), tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert state.keys() == net.state_dict().keys()
    copy_ = pickle.loads(pickle.dumps(net))
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(copy_.eval()(x), net.eval()(x))


def test_take_with_a_frozen_weight() -> None:
    frozen = torch.randn(4, 3)
    trained = torch.randn(4, 3, requires_grad=True)
    trained.grad = torch.zeros_like(trained)
    r = region(trained, (slice(0, 2),))
    a, b = take([frozen, trained], [region(frozen, (slice(0, 2),)), r])
    (a.sum() + b.sum()).backward()
    assert frozen.grad is None and trained.grad[:2].eq(1).all() and trained.grad[2:].eq(0).all()


class _CountWrites(TorchDispatchMode):
    """Counts dispatched operations that write memory (all but views): kernel launches."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        schema = func._schema
        view = not schema.is_mutable and any(r.alias_info is not None for r in schema.returns)
        self.count += not view
        return func(*args, **(kwargs or {}))


def test_a_training_step_launches_no_more_operations_than_the_static_export() -> None:
    """The GPU path is launch-bound: with the subnet active, a training step of OFA's supernet
    (slices, kernel transforms, gradients into the shared weights) dispatches no more
    memory-writing operations than the same step of the exported static subnet."""
    torch.manual_seed(0)
    net = MobileNetV3Supernet(num_classes=1000, resolutions=(32,)).train()
    net.to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (2,))
    rng = np.random.default_rng(0)
    for arch in (net.space.smallest(), net.space.sample(rng), net.space.sample(rng)):
        static = net.export_subnet(arch).train().to(memory_format=torch.channels_last)
        counts = []
        for model in (net, static):
            for counting in (False, True):  # the first step creates .grad; count the second
                mode = _CountWrites()
                with mode if counting else contextlib.nullcontext():
                    if model is net:
                        net.set_active(arch)
                    F.cross_entropy(model(x), y).backward()
            counts.append(mode.count)
        assert counts[0] <= counts[1], (dict(arch), counts)
