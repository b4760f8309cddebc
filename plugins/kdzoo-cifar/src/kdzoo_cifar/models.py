"""RepDistiller's CIFAR architectures behind timm's feature API.

Layer for layer the definitions of HobbitLong/RepDistiller (``models/resnet.py``, ``resnetv2.py``,
``wrn.py``, ``vgg.py``, ``mobilenetv2.py``, ``ShuffleNetv1.py``, ``ShuffleNetv2.py``; commit b84f547),
so the parameter counts are theirs; only the module names differ (each net is cut into ``stages``,
a ``pre_head`` and an ``fc`` so that ``forward_intermediates`` returns the stage outputs that
RepDistiller's ``is_feat=True`` returns, and ``forward_head(x, pre_logits=True)`` its pooled feature).
The input's channel count follows the data (3 for CIFAR).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdzoo.plugin import StagedNet


class CifarNet(StagedNet):
    """timm's feature API over ``stages`` (feature maps), ``pre_head`` (pooling) and ``fc``.

    Attributes:
        stages: the feature stages; ``forward_intermediates`` returns their outputs ``[B, C, H, W]``.
        pre_head: stage output -> pooled feature ``[B, num_features]``.
        fc: the classifier.
        feature_info: per stage ``num_chs``, ``reduction`` and ``module``.
        num_features: the pooled feature's width.
    """

    def _finish(self, channels: list[int], reductions: list[int], num_features: int) -> None:
        self.feature_info = [dict(num_chs=c, reduction=r, module=f"stages.{i}")
                             for i, (c, r) in enumerate(zip(channels, reductions))]
        self.num_features = num_features


def _pool() -> nn.Sequential:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))


# -- resnet.py: CIFAR ResNets (He et al.), resnet8 ... resnet110, resnet8x4, resnet32x4 ---------------------------
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class CifarResNet(CifarNet):
    """RepDistiller's ``ResNet(depth, num_filters)`` with basic blocks: ``(depth - 2) / 6`` per stage."""

    def __init__(self, depth: int, num_filters: list[int], num_classes: int, in_chans: int = 3) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"depth {depth} is not 6n + 2")
        n = (depth - 2) // 6
        self.inplanes = num_filters[0]
        stem = nn.Sequential(nn.Conv2d(in_chans, num_filters[0], 3, padding=1, bias=False),
                             nn.BatchNorm2d(num_filters[0]), nn.ReLU())
        layers = [self._make_layer(num_filters[1], n), self._make_layer(num_filters[2], n, 2),
                  self._make_layer(num_filters[3], n, 2)]
        self.stages = nn.ModuleList([stem, *layers])
        self.pre_head = _pool()
        self.fc = nn.Linear(num_filters[3], num_classes)
        self._finish(num_filters, [1, 1, 2, 4], num_filters[3])
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)


# -- resnetv2.py: ResNet50 for CIFAR (bottlenecks, 3x3 stem, no max-pool) ------------------------------------------
class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes * 4:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes * 4, 1, stride, bias=False),
                                          nn.BatchNorm2d(planes * 4))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class CifarResNetV2(CifarNet):
    """RepDistiller's ``resnetv2.ResNet(Bottleneck, num_blocks)`` (``ResNet50``: ``[3, 4, 6, 3]``)."""

    def __init__(self, num_blocks: list[int], num_classes: int, in_chans: int = 3) -> None:
        super().__init__()
        self.in_planes = 64
        stem = nn.Sequential(nn.Conv2d(in_chans, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        layers = [self._make_layer(p, n, s) for p, n, s in zip((64, 128, 256, 512), num_blocks, (1, 2, 2, 2))]
        self.stages = nn.ModuleList([stem, *layers])
        self.pre_head = _pool()
        self.fc = nn.Linear(2048, num_classes)
        self._finish([64, 256, 512, 1024, 2048], [1, 1, 2, 4, 8], 2048)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(Bottleneck(self.in_planes, planes, s))
            self.in_planes = planes * 4
        return nn.Sequential(*layers)


# -- wrn.py: wide ResNets (Zagoruyko & Komodakis), pre-activation blocks ------------------------------------------
class WideBlock(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, 1, 1, bias=False)
        self.equal = in_planes == out_planes
        self.shortcut = None if self.equal else nn.Conv2d(in_planes, out_planes, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        act = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(act))))
        return out + (x if self.equal else self.shortcut(act))


class WideResNet(CifarNet):
    """RepDistiller's ``WideResNet(depth, widen_factor)``: ``(depth - 4) / 6`` blocks per stage."""

    def __init__(self, depth: int, widen_factor: int, num_classes: int, in_chans: int = 3) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"depth {depth} is not 6n + 4")
        n = (depth - 4) // 6
        ch = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]

        def group(cin: int, cout: int, stride: int) -> list[nn.Module]:
            return [WideBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(n)]

        self.stages = nn.ModuleList([
            nn.Conv2d(in_chans, ch[0], 3, 1, 1, bias=False),
            nn.Sequential(*group(ch[0], ch[1], 1)),
            nn.Sequential(*group(ch[1], ch[2], 2)),
            nn.Sequential(*group(ch[2], ch[3], 2), nn.BatchNorm2d(ch[3]), nn.ReLU()),  # the final BN-ReLU
        ])
        self.pre_head = _pool()
        self.fc = nn.Linear(ch[3], num_classes)
        self._finish(ch, [1, 1, 2, 4], ch[3])
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)


# -- vgg.py: VGG with batch norm, five blocks (the 4th pooling only at 64 px) --------------------------------------
VGG_CFG = {
    "vgg8": [[64], [128], [256], [512], [512]],
    "vgg11": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "vgg13": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
}


class CifarVGG(CifarNet):
    """RepDistiller's ``VGG(cfg, batch_norm=True)``: 3x3 conv-BN-ReLU blocks, max-pool between blocks."""

    def __init__(self, cfg: list[list[int]], num_classes: int, in_chans: int = 3, image_size: int = 32) -> None:
        super().__init__()

        def block(widths: list[int], cin: int) -> list[nn.Module]:
            layers: list[nn.Module] = []
            for v in widths:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
                cin = v
            return layers

        cins = [in_chans] + [c[-1] for c in cfg[:-1]]
        stages = [nn.Sequential(*block(cfg[0], cins[0]))]
        for i in range(1, 4):
            stages.append(nn.Sequential(nn.MaxPool2d(2, 2), *block(cfg[i], cins[i])))
        pool3 = [nn.MaxPool2d(2, 2)] if image_size == 64 else []
        stages.append(nn.Sequential(*pool3, *block(cfg[4], cins[4])))
        self.stages = nn.ModuleList(stages)
        self.pre_head = _pool()
        self.fc = nn.Linear(512, num_classes)
        self._finish([c[-1] for c in cfg], [1, 2, 4, 8, 16 if pool3 else 8], 512)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)


# -- mobilenetv2.py: MobileNetV2 (RepDistiller's mobile_half: T = 6, width 0.5) ------------------------------------
class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = inp * expand_ratio
        self.use_res = stride == 1 and inp == oup
        self.conv = nn.Sequential(
            nn.Conv2d(inp, hidden, 1, 1, 0, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class CifarMobileNetV2(CifarNet):
    """RepDistiller's ``MobileNetV2(T, feature_dim, width_mult)``; its features f0..f4 are the stages here."""

    def __init__(self, expansion: int, width_mult: float, num_classes: int, in_chans: int = 3) -> None:
        super().__init__()
        setting = [[1, 16, 1, 1], [expansion, 24, 2, 1], [expansion, 32, 3, 2], [expansion, 64, 4, 2],
                   [expansion, 96, 3, 1], [expansion, 160, 3, 2], [expansion, 320, 1, 1]]
        cin = int(32 * width_mult)
        stem = nn.Sequential(nn.Conv2d(in_chans, cin, 3, 2, 1, bias=False), nn.BatchNorm2d(cin), nn.ReLU())
        blocks = []
        for t, c, n, s in setting:
            cout = int(c * width_mult)
            layers = []
            for stride in [s] + [1] * (n - 1):
                layers.append(InvertedResidual(cin, cout, stride, t))
                cin = cout
            blocks.append(nn.Sequential(*layers))
        # RepDistiller's feature points: f1 after blocks 0-1, f2 after 2, f3 after 3-4, f4 after 5-6
        self.stages = nn.ModuleList([stem, nn.Sequential(*blocks[0:2]), blocks[2], nn.Sequential(*blocks[3:5]),
                                     nn.Sequential(*blocks[5:7])])
        last = int(1280 * width_mult) if width_mult > 1.0 else 1280
        self.pre_head = nn.Sequential(nn.Conv2d(cin, last, 1, 1, 0, bias=False), nn.BatchNorm2d(last), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.fc = nn.Linear(last, num_classes)
        chans = [int(32 * width_mult)] + [int(c * width_mult) for c in (24, 32, 96, 320)]
        self._finish(chans, [2, 2, 4, 8, 16], last)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, (2.0 / n) ** 0.5)
            elif isinstance(m, nn.Linear):
                m.weight.data.normal_(0, 0.01)
                m.bias.data.zero_()


# -- ShuffleNetv1.py / ShuffleNetv2.py ------------------------------------------------------------------------------
def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """``[N, C, H, W]`` with channels regrouped ``(g, C/g) -> (C/g, g)``."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).permute(0, 2, 1, 3, 4).reshape(n, c, h, w)


class ShuffleV1Block(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, stride: int, groups: int) -> None:
        super().__init__()
        self.stride = stride
        mid = int(out_planes / 4)
        self.g = 1 if in_planes == 24 else groups
        self.conv1 = nn.Conv2d(in_planes, mid, 1, groups=self.g, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_planes, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = channel_shuffle(F.relu(self.bn1(self.conv1(x))), self.g)
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        res = self.shortcut(x)
        return F.relu(torch.cat([out, res], 1) if self.stride == 2 else out + res)


class ShuffleNetV1(CifarNet):
    """RepDistiller's ``ShuffleV1``: out planes 240/480/960, blocks 4/8/4, groups 3, 1x1 stem of 24."""

    def __init__(self, num_classes: int, in_chans: int = 3, out_planes: tuple[int, ...] = (240, 480, 960),
                 num_blocks: tuple[int, ...] = (4, 8, 4), groups: int = 3) -> None:
        super().__init__()
        stem = nn.Sequential(nn.Conv2d(in_chans, 24, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU())
        self.in_planes = 24
        layers = []
        for planes, blocks in zip(out_planes, num_blocks):
            seq = []
            for i in range(blocks):
                cat = self.in_planes if i == 0 else 0
                seq.append(ShuffleV1Block(self.in_planes, planes - cat, 2 if i == 0 else 1, groups))
                self.in_planes = planes
            layers.append(nn.Sequential(*seq))
        self.stages = nn.ModuleList([stem, *layers])
        self.pre_head = _pool()
        self.fc = nn.Linear(out_planes[2], num_classes)
        self._finish([24, *out_planes], [1, 2, 4, 8], out_planes[2])


class ShuffleV2Basic(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels // 2
        self.conv1 = nn.Conv2d(c, c, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, c, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c)

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1] // 2
        x1, x2 = x[:, :c], x[:, c:]
        out = F.relu(self.bn1(self.conv1(x2)))
        out = self.bn2(self.conv2(out))
        out = F.relu(self.bn3(self.conv3(out)))
        return channel_shuffle(torch.cat([x1, out], 1), 2)


class ShuffleV2Down(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = cout // 2
        self.conv1 = nn.Conv2d(cin, cin, 3, 2, 1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv2 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv4 = nn.Conv2d(mid, mid, 3, 2, 1, groups=mid, bias=False)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = nn.Conv2d(mid, mid, 1, bias=False)
        self.bn5 = nn.BatchNorm2d(mid)

    def forward(self, x: Tensor) -> Tensor:
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = self.bn4(self.conv4(F.relu(self.bn3(self.conv3(x)))))
        right = F.relu(self.bn5(self.conv5(right)))
        return channel_shuffle(torch.cat([left, right], 1), 2)


class ShuffleNetV2(CifarNet):
    """RepDistiller's ``ShuffleV2`` (``net_size = 1``): channels 116/232/464, blocks 3/7/3, 1x1 head conv to 1024."""

    def __init__(self, num_classes: int, in_chans: int = 3, out_channels: tuple[int, ...] = (116, 232, 464, 1024),
                 num_blocks: tuple[int, ...] = (3, 7, 3)) -> None:
        super().__init__()
        stem = nn.Sequential(nn.Conv2d(in_chans, 24, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU())
        cin, layers = 24, []
        for cout, blocks in zip(out_channels[:3], num_blocks):
            layers.append(nn.Sequential(ShuffleV2Down(cin, cout), *[ShuffleV2Basic(cout) for _ in range(blocks)]))
            cin = cout
        head = [nn.Conv2d(out_channels[2], out_channels[3], 1, bias=False), nn.BatchNorm2d(out_channels[3]), nn.ReLU()]
        layers[-1] = nn.Sequential(*layers[-1], *head)  # RepDistiller's conv2/bn2 after layer3
        self.stages = nn.ModuleList([stem, *layers])
        self.pre_head = _pool()
        self.fc = nn.Linear(out_channels[3], num_classes)
        self._finish([24, out_channels[0], out_channels[1], out_channels[3]], [1, 2, 4, 8], out_channels[3])


# -- the registered factories: factory(num_classes, input_shape, **kwargs) ----------------------------------------
def _chans(input_shape: tuple[int, ...]) -> int:
    if len(input_shape) != 3:
        raise ValueError(f"CIFAR models take images [C, H, W], got input shape {list(input_shape)}")
    return input_shape[0]


RESNETS = {"resnet8": 8, "resnet14": 14, "resnet20": 20, "resnet32": 32, "resnet44": 44, "resnet56": 56,
           "resnet110": 110}
WRNS = {"wrn-16-1": (16, 1), "wrn-16-2": (16, 2), "wrn-40-1": (40, 1), "wrn-40-2": (40, 2)}
# kdzoo name -> RepDistiller's model_dict name (kdzoo names are lower-case words joined by hyphens, and
# timm already owns resnet50, vgg11 and vgg13)
REPDISTILLER_NAMES = {**{n: n for n in ("resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56",
                                        "resnet110", "resnet8x4", "resnet32x4")},
                      "resnet50-cifar": "ResNet50", "wrn-16-1": "wrn_16_1", "wrn-16-2": "wrn_16_2",
                      "wrn-40-1": "wrn_40_1", "wrn-40-2": "wrn_40_2", "vgg8-cifar": "vgg8", "vgg11-cifar": "vgg11",
                      "vgg13-cifar": "vgg13", "mobilenetv2-cifar": "MobileNetV2", "shufflev1": "ShuffleV1",
                      "shufflev2": "ShuffleV2"}


def factories() -> dict[str, tuple[Any, str]]:
    """``{name: (factory, description)}`` of every CIFAR architecture (:data:`REPDISTILLER_NAMES` maps each
    name to RepDistiller's)."""
    out: dict[str, tuple[Any, str]] = {}
    for name, depth in RESNETS.items():
        out[name] = (lambda num_classes, input_shape, d=depth: CifarResNet(d, [16, 16, 32, 64], num_classes,
                                                                          _chans(input_shape)),
                     f"CIFAR ResNet-{depth} (filters 16/32/64)")
    out["resnet8x4"] = (lambda num_classes, input_shape: CifarResNet(8, [32, 64, 128, 256], num_classes,
                                                                     _chans(input_shape)), "CIFAR ResNet-8, 4x wide")
    out["resnet32x4"] = (lambda num_classes, input_shape: CifarResNet(32, [32, 64, 128, 256], num_classes,
                                                                      _chans(input_shape)), "CIFAR ResNet-32, 4x wide")
    out["resnet50-cifar"] = (lambda num_classes, input_shape: CifarResNetV2([3, 4, 6, 3], num_classes,
                                                                            _chans(input_shape)),
                             "ResNet-50 (bottlenecks) with a 3x3 CIFAR stem")
    for name, (depth, k) in WRNS.items():
        out[name] = (lambda num_classes, input_shape, d=depth, w=k: WideResNet(d, w, num_classes, _chans(input_shape)),
                     f"wide ResNet WRN-{depth}-{k}")
    for name, cfg in VGG_CFG.items():
        out[f"{name}-cifar"] = (lambda num_classes, input_shape, c=cfg: CifarVGG(c, num_classes, _chans(input_shape),
                                                                                 input_shape[-1]),
                                f"VGG-{name[3:]} with batch norm (RepDistiller's {name})")
    out["mobilenetv2-cifar"] = (lambda num_classes, input_shape: CifarMobileNetV2(6, 0.5, num_classes,
                                                                                  _chans(input_shape)),
                                "MobileNetV2, width 0.5, expansion 6 (RepDistiller's mobile_half)")
    out["shufflev1"] = (lambda num_classes, input_shape: ShuffleNetV1(num_classes, _chans(input_shape)),
                        "ShuffleNetV1, groups 3")
    out["shufflev2"] = (lambda num_classes, input_shape: ShuffleNetV2(num_classes, _chans(input_shape)),
                        "ShuffleNetV2, net size 1")
    return out
