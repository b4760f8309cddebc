"""The CIFAR kit's architectures: parameter counts (published, and re-derived from RepDistiller's
definitions by closed forms), stage shapes on 32x32 inputs, and timm's feature API through kdzoo."""

from __future__ import annotations

import pytest
import torch

from kdzoo.config import ModelConfig
from kdzoo.testing import check_strategy
from kdzoo_cifar.models import REPDISTILLER_NAMES, factories

# millions of parameters at 100 classes, as tabulated from the CRD paper (Tian et al., arXiv:1910.10699)
PUBLISHED_M = {"resnet8x4": 1.23, "resnet32x4": 7.43, "wrn-40-2": 2.26, "resnet56": 0.86, "resnet110": 1.74,
               "vgg13-cifar": 9.46, "mobilenetv2-cifar": 0.81, "shufflev1": 0.95, "shufflev2": 1.36}


def bn(c):
    return 2 * c


def resnet_count(depth, f, k=100):
    """RepDistiller resnet.py: 3x3 stem + BN, three stages of (depth - 2) / 6 basic blocks, 1x1-conv+BN downsample."""
    n, total, cin = (depth - 2) // 6, 3 * f[0] * 9 + bn(f[0]), f[0]
    for i, cout in enumerate(f[1:]):
        stride = 1 if i == 0 else 2
        for b in range(n):
            c = cin if b == 0 else cout
            total += c * cout * 9 + bn(cout) + cout * cout * 9 + bn(cout)
            if b == 0 and (stride != 1 or cin != cout):
                total += cin * cout + bn(cout)
        cin = cout
    return total + f[3] * k + k


def wrn_count(depth, w, k=100):
    """RepDistiller wrn.py: pre-activation blocks (BN-ReLU-conv x2), 1x1 shortcut conv when widths differ."""
    n, ch = (depth - 4) // 6, [16, 16 * w, 32 * w, 64 * w]
    total = 3 * 16 * 9
    for cin, cout in zip(ch[:-1], ch[1:]):
        for b in range(n):
            c = cin if b == 0 else cout
            total += bn(c) + c * cout * 9 + bn(cout) + cout * cout * 9 + (c * cout if c != cout else 0)
    return total + bn(ch[3]) + ch[3] * k + k


def vgg_count(cfg, k=100):
    """RepDistiller vgg.py with batch norm: 3x3 convs with bias, BN after each, one linear 512 -> k."""
    total, cin = 0, 3
    for block in cfg:
        for v in block:
            total += cin * v * 9 + v + bn(v)
            cin = v
    return total + 512 * k + k


def resnet50_count(k=100):
    """RepDistiller resnetv2.py ResNet50: 3x3 stem, bottlenecks [3, 4, 6, 3], 1x1 projection shortcuts."""
    total, cin = 3 * 64 * 9 + bn(64), 64
    for planes, blocks in zip((64, 128, 256, 512), (3, 4, 6, 3)):
        for b in range(blocks):
            total += cin * planes + bn(planes) + planes * planes * 9 + bn(planes) + planes * 4 * planes + bn(4 * planes)
            if b == 0:
                total += cin * 4 * planes + bn(4 * planes)
            cin = 4 * planes
    return total + 2048 * k + k


CLOSED_FORM = {
    **{f"resnet{d}": resnet_count(d, [16, 16, 32, 64]) for d in (8, 14, 20, 32, 44, 56, 110)},
    "resnet8x4": resnet_count(8, [32, 64, 128, 256]), "resnet32x4": resnet_count(32, [32, 64, 128, 256]),
    **{f"wrn-{d}-{w}": wrn_count(d, w) for d in (16, 40) for w in (1, 2)},
    "vgg8-cifar": vgg_count([[64], [128], [256], [512], [512]]),
    "vgg11-cifar": vgg_count([[64], [128], [256, 256], [512, 512], [512, 512]]),
    "vgg13-cifar": vgg_count([[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]]),
    "resnet50-cifar": resnet50_count(),
}

# stage outputs (C, H, W) on 3x32x32 inputs: RepDistiller's is_feat maps (feats[:-1]) in order
R16 = [(16, 32, 32), (16, 32, 32), (32, 16, 16), (64, 8, 8)]
X4 = [(32, 32, 32), (64, 32, 32), (128, 16, 16), (256, 8, 8)]
VGG = [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 4, 4)]
SHAPES = {
    **{f"resnet{d}": R16 for d in (8, 14, 20, 32, 44, 56, 110)}, "resnet8x4": X4, "resnet32x4": X4,
    "resnet50-cifar": [(64, 32, 32), (256, 32, 32), (512, 16, 16), (1024, 8, 8), (2048, 4, 4)],
    "wrn-16-1": R16, "wrn-40-1": R16,
    "wrn-16-2": [(16, 32, 32), (32, 32, 32), (64, 16, 16), (128, 8, 8)],
    "wrn-40-2": [(16, 32, 32), (32, 32, 32), (64, 16, 16), (128, 8, 8)],
    "vgg8-cifar": VGG, "vgg11-cifar": VGG, "vgg13-cifar": VGG,
    "mobilenetv2-cifar": [(16, 16, 16), (12, 16, 16), (16, 8, 8), (48, 4, 4), (160, 2, 2)],
    "shufflev1": [(24, 32, 32), (240, 16, 16), (480, 8, 8), (960, 4, 4)],
    "shufflev2": [(24, 32, 32), (116, 16, 16), (232, 8, 8), (1024, 4, 4)],
}
POOLED = {"mobilenetv2-cifar": 1280, "shufflev1": 960, "shufflev2": 1024, "resnet50-cifar": 2048}


def test_every_architecture_of_the_issue_is_registered_once(zoo):
    models = zoo.collect().models
    assert set(factories()) == set(SHAPES) == set(REPDISTILLER_NAMES)
    assert all(models[name].distribution == "kdzoo-cifar" for name in SHAPES)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_parameter_count_and_stage_shapes(name):
    net = factories()[name][0](100, (3, 32, 32)).eval()
    count = sum(p.numel() for p in net.parameters())
    if name in CLOSED_FORM:
        assert count == CLOSED_FORM[name]
    if name in PUBLISHED_M:
        assert round(count / 1e6, 2) == PUBLISHED_M[name]
    with torch.no_grad():
        last, inter = net.forward_intermediates(torch.randn(2, 3, 32, 32))
        pooled = net.forward_head(last, pre_logits=True)
        logits = net.forward_head(last)
    assert [tuple(t.shape[1:]) for t in inter] == SHAPES[name]
    assert [d["num_chs"] for d in net.feature_info] == [s[0] for s in SHAPES[name]]
    assert [32 // d["reduction"] for d in net.feature_info] == [s[1] for s in SHAPES[name]]
    assert pooled.shape == (2, net.num_features) and net.num_features == POOLED.get(name, SHAPES[name][-1][0])
    assert logits.shape == (2, 100) and net(torch.zeros(1, 3, 32, 32)).shape == (1, 100)


@pytest.mark.parametrize("name", ["crd", "reviewkd", "at"])
def test_feature_strategies_train_on_the_kit(name, zoo):
    """One pair of the kit, 1-channel 16x16 tiny data: the feature strategies find their layers and train."""
    check_strategy(name, zoo=zoo, teacher=ModelConfig("resnet32x4"), student=ModelConfig("resnet8x4"))


# Parameter counts at 100 classes of RepDistiller's own model files (github.com/HobbitLong/RepDistiller,
# commit b84f547c5db6a35318d4671d7d5c4de74c822403, models/*.py, `model_dict[name](num_classes=100)`),
# counted by instantiating them; the numbers are facts about that commit, not code taken from it.
REPDISTILLER_COUNTS = {
    "resnet8": 83_892, "resnet14": 181_108, "resnet20": 278_324, "resnet32": 472_756, "resnet44": 667_188,
    "resnet56": 861_620, "resnet110": 1_736_564, "resnet8x4": 1_233_540, "resnet32x4": 7_433_860,
    "ResNet50": 23_705_252, "wrn_16_1": 180_916, "wrn_16_2": 703_284, "wrn_40_1": 569_780, "wrn_40_2": 2_255_156,
    "vgg8": 3_965_028, "vgg11": 9_277_284, "vgg13": 9_462_180, "MobileNetV2": 812_836, "ShuffleV1": 949_258,
    "ShuffleV2": 1_355_528,
}


@pytest.mark.parametrize("name", sorted(REPDISTILLER_NAMES))
def test_parameter_count_equals_repdistillers_model_file(name):
    net = factories()[name][0](num_classes=100, input_shape=[3, 32, 32])
    assert sum(p.numel() for p in net.parameters()) == REPDISTILLER_COUNTS[REPDISTILLER_NAMES[name]]
