"""Once-for-All's published MobileNetV3 supernets load into ours and compute what OFA computes.

Random weights and BatchNorm statistics in OFA's own network, saved the way OFA publishes
them, loaded through `load_pretrained(..., path=...)`: in eval mode the logits of the largest,
the smallest and 25 random subnets at 128-224 pixels equal OFA's, our exported static subnet
equals OFA's `get_active_subnet()`, and our MACs equal OFA's own count (to its
float32 precision).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from supernet.mobilenetv3.ofa_weights import arch_from_ofa, ofa_settings
from supernet.pretrained import load_pretrained
from supernet.weight_import import WeightMismatchError
from tests.supernet.published_references import ofa_network, save_ofa

RESOLUTIONS = (128, 160, 192, 224)
TOLERANCE = 1e-4  # of the largest logit


@pytest.fixture(scope="module", params=[1.0, 1.2], ids=["w10", "w12"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """(name, OFA's network, ours loaded from OFA's file)."""
    width = request.param
    name = "ofa_mbv3_w10" if width == 1.0 else "ofa_mbv3_w12"
    ofa = ofa_network(width, seed=int(width * 10))
    path = save_ofa(ofa, tmp_path_factory.mktemp("ofa") / f"{name}.pth")
    return name, ofa, load_pretrained(name, path=str(path))


def _archs(space: Any) -> list[Any]:
    rng = np.random.default_rng(0)
    picks = [space.largest(), space.smallest()]
    picks += [space.sample(rng) for _ in range(25)]
    # cycle the four resolutions of the check over all of them
    return [space.arch(a.replace(resolution=RESOLUTIONS[i % 4])) for i, a in enumerate(picks)]


def _relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours - theirs).abs().max() / theirs.abs().max())


@torch.no_grad()
def test_subnets_equal_ofa(pair: Any, one_thread: None) -> None:
    pytest.importorskip("ofa")
    from ofa.utils.pytorch_utils import count_net_flops

    name, ofa, ours = pair
    torch.manual_seed(1)
    images = torch.randn(1, 3, 224, 224)
    worst = worst_static = 0.0
    for arch in _archs(ours.space):
        size = arch["resolution"]
        x = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear")
        ofa.set_active_subnet(**ofa_settings(arch, ours.layout))
        ours.set_active(arch)
        theirs = ofa(x)
        diff = _relative(ours(x), theirs)
        assert diff < TOLERANCE, f"{arch.arch_id}: logits differ by {diff:.2e} of the largest"
        subnet = ofa.get_active_subnet(preserve_weight=True).eval()
        static = _relative(ours.export_subnet(arch).eval()(x), subnet(x))
        assert static < TOLERANCE, f"{arch.arch_id}: static subnets differ by {static:.2e}"
        # OFA sums its count in float32 (about 7 significant digits); one kernel or ratio
        # step of the cheapest block changes the count by far more than this tolerance
        theirs_macs = count_net_flops(subnet, (1, 3, size, size))
        assert ours.macs(arch) == pytest.approx(theirs_macs, rel=1e-6, abs=0)
        worst, worst_static = max(worst, diff), max(worst_static, static)
    print(f"\n{name}: largest relative logit difference {worst:.2e} (supernet), "
          f"{worst_static:.2e} (exported vs get_active_subnet)")


def test_bn_statistics_come_along(pair: Any) -> None:
    _, ofa, ours = pair
    theirs = ofa.state_dict()
    assert torch.equal(ours.stem[1].running_var, theirs["first_conv.bn.running_var"])
    block = ours.units[2][1]  # unit 3, block 2 = OFA block 1 + 2*4 + 1
    assert torch.equal(block.depthwise_bn.running_mean,
                       theirs["blocks.10.conv.depth_conv.bn.bn.running_mean"])


def test_ofa_settings_round_trip(pair: Any) -> None:
    _, _, ours = pair
    arch = ours.space.sample(np.random.default_rng(5))
    settings = ofa_settings(arch, ours.layout)
    assert arch_from_ofa(ours.space, **settings, resolution=arch["resolution"]) == arch


def test_current_package_names_load_too(tmp_path: Path) -> None:
    ofa = ofa_network(1.0, seed=3)
    path = save_ofa(ofa, tmp_path / "today.pth", published_names=False)
    ours = load_pretrained("ofa_mbv3_w10", path=str(path))
    assert torch.equal(ours.head.classifier.bias, ofa.classifier.linear.bias)


def test_wider_file_for_w10_names_the_tensor(pair: Any, tmp_path: Path) -> None:
    name, ofa, _ = pair
    other = "ofa_mbv3_w12" if name == "ofa_mbv3_w10" else "ofa_mbv3_w10"
    path = save_ofa(ofa, tmp_path / "file.pth")
    with pytest.raises(WeightMismatchError, match=r"'first_conv\.conv\.weight' has shape"):
        load_pretrained(other, path=str(path))


def test_another_space_is_refused(tmp_path: Path) -> None:
    narrow = ofa_network(1.0, expand_ratio_list=[3, 4])  # largest hidden width 4×, not 6×
    path = save_ofa(narrow, tmp_path / "e34.pth")
    with pytest.raises(WeightMismatchError, match="inverted_bottleneck.conv.conv.weight"):
        load_pretrained("ofa_mbv3_w10", path=str(path))


def test_extra_tensor_is_refused(tmp_path: Path) -> None:
    ofa = ofa_network(1.0, seed=4)
    state = ofa.state_dict()
    state["classifier.extra.weight"] = torch.zeros(3)
    torch.save({"state_dict": state}, tmp_path / "extra.pth")
    with pytest.raises(WeightMismatchError, match="'classifier.extra.weight'.*no place"):
        load_pretrained("ofa_mbv3_w10", path=str(tmp_path / "extra.pth"))


@torch.no_grad()
def test_bn_recalibration_is_ofas(pair: Any, one_thread: None) -> None:
    """`recalibrate_bn` gives the statistics of OFA's `set_running_statistics`."""
    pytest.importorskip("ofa")
    from ofa.imagenet_classification.elastic_nn.utils import set_running_statistics

    from supernet.calibration import recalibrate_bn

    _, ofa, ours = pair
    arch = ours.space.sample(np.random.default_rng(7))
    arch = ours.space.arch(arch.replace(resolution=128))
    ofa.set_active_subnet(**ofa_settings(arch, ours.layout))
    theirs = ofa.get_active_subnet(preserve_weight=True)
    mine = ours.export_subnet(arch)
    torch.manual_seed(2)
    batches = [(torch.randn(n, 3, 128, 128), torch.zeros(n, dtype=torch.long)) for n in (6, 4)]
    set_running_statistics(theirs, batches)
    assert recalibrate_bn(mine, batches, resolution=128) == 10
    x = batches[0][0]
    assert _relative(mine.eval()(x), theirs.eval()(x)) < TOLERANCE
    assert torch.allclose(mine.head.final_expand[1].running_var,
                          theirs.final_expand_layer.bn.running_var, rtol=1e-5)
