"""Registered models that are not timm models, following timm's feature API.

``linear`` (multinomial logistic regression on raw inputs), ``mlp``, ``lenet5`` and ``vggnet`` expose
``forward_features``, ``forward_head(x, pre_logits=...)``, ``forward_intermediates``,
``get_classifier``, ``feature_info`` and ``num_features``, so strategies treat them like timm models.
"""

from __future__ import annotations

import math

from torch import Tensor, nn


def _resolve(indices: list[int] | int | None, n: int) -> list[int]:
    if indices is None:
        return list(range(n))
    if isinstance(indices, int):
        return list(range(n - indices, n))
    out = [i + n if i < 0 else i for i in indices]
    bad = [i for i in out if not 0 <= i < n]
    if bad:
        raise IndexError(f"feature index {bad[0]} out of range; this model has {n} feature stages (0..{n - 1})")
    return out


class StagedNet(nn.Module):
    """timm's feature API for a network cut into ``stages``, a ``pre_head`` and an ``fc``.

    Subclasses (kdzoo's ``linear``/``mlp``/``lenet5``, a plugin's own models) define the three parts
    plus ``feature_info`` and ``num_features``; strategies then treat them like timm models.

    Attributes:
        stages: the feature stages; ``forward_intermediates`` returns their outputs.
        pre_head: last stage output -> pooled feature ``[B, num_features]``.
        fc: the classifier.
    """

    stages: nn.ModuleList
    feature_info: list[dict]

    def forward_features(self, x: Tensor) -> Tensor:
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.pre_head(x)
        return x if pre_logits else self.fc(x)

    def forward_intermediates(self, x: Tensor, indices: list[int] | int | None = None, intermediates_only: bool = False,
                              **_: object) -> tuple[Tensor, list[Tensor]] | list[Tensor]:
        wanted = _resolve(indices, len(self.stages))
        inter = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in wanted:
                inter.append(x)
        return inter if intermediates_only else (x, inter)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


class Linear(StagedNet):
    """Multinomial logistic regression (or linear regression) on the raw, flattened input."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.num_features = math.prod(input_shape)
        self.stages = nn.ModuleList([nn.Flatten(1)])
        self.pre_head = nn.Identity()
        self.fc = nn.Linear(self.num_features, num_classes)
        self.feature_info = []

    def forward_intermediates(self, x, indices=None, intermediates_only=False, **kw):
        raise ValueError("model 'linear' has no intermediate features (use pooled/logit strategies)")


class MLP(StagedNet):
    """Fully connected net on the flattened input; each hidden layer is a feature stage.

    Args:
        hidden: widths of the hidden layers, e.g. ``[30]`` or ``[1200, 1200]``.
        dropout: dropout after each hidden activation.
    """

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], hidden: list[int] | int = (256,),
                 dropout: float = 0.0) -> None:
        super().__init__()
        hidden = [hidden] if isinstance(hidden, int) else list(hidden)
        if not hidden:
            raise ValueError("mlp needs at least one hidden layer (use 'linear' for none)")
        width = math.prod(input_shape)
        stages = []
        for i, h in enumerate(hidden):
            layers: list[nn.Module] = [nn.Flatten(1)] if i == 0 else []
            layers += [nn.Linear(width, h), nn.ReLU(inplace=False)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            stages.append(nn.Sequential(*layers))
            width = h
        self.stages = nn.ModuleList(stages)
        self.pre_head = nn.Identity()
        self.fc = nn.Linear(width, num_classes)
        self.num_features = width
        self.feature_info = [dict(num_chs=h, reduction=1, module=f"stages.{i}") for i, h in enumerate(hidden)]


class LeNet5(StagedNet):
    """LeNet-5 (LeCun et al. 1998): two conv stages, then 120-84 fully connected layers.

    Args:
        batchnorm: add BatchNorm after each conv (needed by BN-statistics data-free methods).
        width: multiplier of every channel and hidden width (0.5 gives DAFL's LeNet-5-half).
    """

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], batchnorm: bool = False,
                 width: float = 1.0) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError("lenet5 takes images [C, H, W]")
        c, h, w = input_shape
        c1, c2, f1, f2 = (max(1, round(v * width)) for v in (6, 16, 120, 84))

        def conv(cin: int, cout: int, pad: int) -> nn.Sequential:
            norm = [nn.BatchNorm2d(cout)] if batchnorm else []
            return nn.Sequential(nn.Conv2d(cin, cout, 5, padding=pad), *norm, nn.ReLU(), nn.MaxPool2d(2))

        self.stages = nn.ModuleList([conv(c, c1, 2), conv(c1, c2, 0)])
        out_h, out_w = ((h // 2) - 4) // 2, ((w // 2) - 4) // 2
        if out_h < 1 or out_w < 1:
            raise ValueError(f"lenet5 needs input of at least 12x12, got {h}x{w}")
        self.pre_head = nn.Sequential(nn.Flatten(1), nn.Linear(c2 * out_h * out_w, f1), nn.ReLU(),
                                      nn.Linear(f1, f2), nn.ReLU())
        self.fc = nn.Linear(f2, num_classes)
        self.num_features = f2
        self.feature_info = [dict(num_chs=c1, reduction=2, module="stages.0"),
                             dict(num_chs=c2, reduction=4, module="stages.1")]


class VGGNet(StagedNet):
    """A VGG-style BatchNorm CNN: stages of 3x3 conv-BN-ReLU layers, each stage ending in a 2x2 max-pool,
    then one hidden fully connected layer (BN, ReLU, dropout).

    The default (``[[32], [64, 64], [128]]``, 256 hidden) is about 30 MFLOP per 28x28 image: the
    "conv + pooling + BatchNorm" family of Fashion-MNIST's published baselines, sized for a CPU.

    Args:
        channels: output channels of each conv, grouped by stage, e.g. ``[[32], [64, 64], [128]]``.
        hidden: width of the fully connected layer before the classifier.
        dropout: dropout before the classifier.
    """

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], channels: list[list[int]] | None = None,
                 hidden: int = 256, dropout: float = 0.3) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError("vggnet takes images [C, H, W]")
        channels = [[32], [64, 64], [128]] if channels is None else [list(s) for s in channels]
        if not channels or not all(channels):
            raise ValueError(f"vggnet needs at least one stage of at least one conv, got channels={channels}")
        cin, (h, w) = input_shape[0], input_shape[1:]
        stages = []
        for stage in channels:
            layers: list[nn.Module] = []
            for cout in stage:
                layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
                cin = cout
            layers.append(nn.MaxPool2d(2))
            stages.append(nn.Sequential(*layers))
            h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(f"vggnet with {len(channels)} stages needs input of at least {2 ** len(channels)} px, "
                             f"got {input_shape[1]}x{input_shape[2]}")
        self.stages = nn.ModuleList(stages)
        self.pre_head = nn.Sequential(nn.Flatten(1), nn.Linear(cin * h * w, hidden, bias=False), nn.BatchNorm1d(hidden),
                                      nn.ReLU(), nn.Dropout(dropout))
        self.fc = nn.Linear(hidden, num_classes)
        self.num_features = hidden
        reduction = 1
        self.feature_info = []
        for i, stage in enumerate(channels):
            reduction *= 2
            self.feature_info.append(dict(num_chs=stage[-1], reduction=reduction, module=f"stages.{i}"))


def linear(num_classes: int, input_shape: tuple[int, ...]) -> Linear:
    return Linear(num_classes, input_shape)


def mlp(num_classes: int, input_shape: tuple[int, ...], hidden: list[int] | int = (256,), dropout: float = 0.0) -> MLP:
    return MLP(num_classes, input_shape, hidden=hidden, dropout=dropout)


def lenet5(num_classes: int, input_shape: tuple[int, ...], batchnorm: bool = False, width: float = 1.0) -> LeNet5:
    return LeNet5(num_classes, input_shape, batchnorm=batchnorm, width=width)


def vggnet(num_classes: int, input_shape: tuple[int, ...], channels: list[list[int]] | None = None, hidden: int = 256,
           dropout: float = 0.3) -> VGGNet:
    return VGGNet(num_classes, input_shape, channels=channels, hidden=hidden, dropout=dropout)


__all__ = ["LeNet5", "Linear", "MLP", "VGGNet", "lenet5", "linear", "mlp", "vggnet"]
