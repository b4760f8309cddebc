"""Feature layers of a model, teacher/student layer pairs, and features in a comparable form.

Features come from timm's ``forward_intermediates`` through ``KDModel.outputs``: CNN stages give
maps ``[B, C, H, W]``; timm ViTs give ``[B, C, H, W]`` as well (tokens reshaped to the patch grid,
class and register tokens dropped); a model that returns tokens ``[B, N, C]`` is reshaped here
(:func:`as_map`); MLP stages give vectors ``[B, D]``.

Pairs are chosen automatically from ``feature_info``: when both models are hierarchical (at least
two distinct reductions, as CNNs) a student layer is matched to the teacher layer of the closest
reduction (the deepest on ties); otherwise (a ViT or an MLP, whose layers share one reduction)
by relative depth. A layer can also be named explicitly, by module name (``layer2``,
``blocks.3``) or stage index (``2``, ``-1``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from kdzoo.plugin import ConfigError


@dataclass(frozen=True)
class Layer:
    """One intermediate feature of a model.

    Attributes:
        index: its index for ``forward_intermediates``.
        module: its module name from ``feature_info``.
        reduction: input-to-feature stride from ``feature_info``.
        shape: per-sample shape after :func:`as_map`: ``(C, H, W)`` for maps, ``(D,)`` for vectors.
        position: relative depth in ``(0, 1]`` (``(index + 1) / number of layers``).
    """

    index: int
    module: str
    reduction: float
    shape: tuple[int, ...]
    position: float

    @property
    def is_map(self) -> bool:
        return len(self.shape) == 3

    @property
    def channels(self) -> int:
        return self.shape[0]

    @property
    def spatial(self) -> int:
        """``H * W`` of a map (1 for a vector)."""
        return self.shape[1] * self.shape[2] if self.is_map else 1

    def describe(self) -> str:
        return f"{self.index}={self.module} [{'x'.join(str(s) for s in self.shape)}]"


def as_map(x: Tensor) -> Tensor:
    """Bring a feature to map form.

    Args:
        x: ``[B, C, H, W]`` maps and ``[B, D]`` vectors are returned as they are; ``[B, N, C]``
            tokens become ``[B, C, s, s]`` on their square grid, leading prefix (class/register)
            tokens dropped.
    """
    if x.dim() in (2, 4):
        return x
    if x.dim() != 3:
        raise ValueError(f"feature of shape {tuple(x.shape)} is neither a map, tokens nor a vector")
    b, n, c = x.shape
    side = math.isqrt(n)
    prefix = n - side * side
    if side == 0 or prefix > 16:
        raise ValueError(f"{n} tokens do not form a square grid (after at most 16 prefix tokens)")
    return x[:, prefix:].transpose(1, 2).reshape(b, c, side, side)


def as_vector(x: Tensor) -> Tensor:
    """``[B, C, H, W]`` -> ``[B, C]`` by global average pooling; ``[B, D]`` unchanged."""
    return x.mean((2, 3)) if x.dim() == 4 else x


def feature_layers(model: Any) -> list[Layer]:
    """Every intermediate feature of a ``KDModel``, with exact shapes from one dry forward.

    The forward runs on zeros in eval mode without gradients (BatchNorm statistics do not move);
    models without ``feature_info`` (``linear``) have no layers.
    """
    info = model.feature_info
    if not info:
        return []
    net = model.net
    param = next(net.parameters(), None)
    x = torch.zeros(1, *model.meta["input_shape"], device=param.device if param is not None else "cpu")
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            _, inter = net.forward_intermediates(x, indices=list(range(len(info))))
    finally:
        net.train(was_training)
    n = len(inter)
    return [Layer(i, str(d.get("module", i)), float(d.get("reduction", 1)), tuple(as_map(t).shape[1:]), (i + 1) / n)
            for i, (d, t) in enumerate(zip(info, inter))]


def available(layers: list[Layer]) -> str:
    return ", ".join(layer.describe() for layer in layers) or "none"


def resolve_layer(layers: list[Layer], spec: int | str, model_name: str, role: str) -> Layer:
    """The layer named by ``spec`` (stage index or module name), else a clear error.

    Args:
        layers: the model's layers (:func:`feature_layers`).
        spec: an index (negative counts from the end) or a ``feature_info`` module name.
        model_name: for the error message.
        role: e.g. ``teacher hint`` (for the error message).
    """
    if not layers:
        raise ConfigError(f"{role} layer: model {model_name!r} exposes no intermediate features "
                          f"(no feature_info); use pooled-feature or a logit strategy")
    if isinstance(spec, str) and spec.lstrip("-").isdigit():
        spec = int(spec)
    if isinstance(spec, int):
        if -len(layers) <= spec < len(layers):
            return layers[spec]
    else:
        for layer in layers:
            if layer.module == spec:
                return layer
    raise ConfigError(f"{role} layer {spec!r} not found in {model_name!r}; available layers: {available(layers)}")


def hierarchical(layers: list[Layer]) -> bool:
    """Whether the layers span at least two reductions (a CNN, not a ViT or an MLP)."""
    return len({layer.reduction for layer in layers}) > 1


def match(teacher: list[Layer], student: list[Layer], s_layer: Layer, candidates: list[Layer] | None = None) -> Layer:
    """The teacher layer for ``s_layer``: closest reduction if both models are hierarchical,
    else closest relative depth; the deeper layer on ties.

    Args:
        teacher: every teacher layer (defines the rule).
        student: every student layer (defines the rule).
        s_layer: the student layer to match.
        candidates: teacher layers allowed (default: all).
    """
    pool = candidates if candidates is not None else teacher
    if not pool:
        raise ConfigError(f"no teacher layer can be paired with student layer {s_layer.describe()}; "
                          f"teacher layers: {available(teacher)}")
    if hierarchical(teacher) and hierarchical(student):
        key = lambda t: (abs(math.log2(t.reduction) - math.log2(s_layer.reduction)), -t.index)  # noqa: E731
    else:
        key = lambda t: (round(abs(t.position - s_layer.position), 9), -t.index)  # noqa: E731
    return min(pool, key=key)


def spread(layers: list[Layer], k: int) -> list[Layer]:
    """At most ``k`` of ``layers``, evenly spaced in depth and always including the deepest."""
    n = len(layers)
    if n <= k:
        return list(layers)
    picks = sorted({max(0, round((j + 1) * n / k) - 1) for j in range(k)})
    return [layers[i] for i in picks]


def parse_pairs(spec: Any) -> list[tuple[int | str, int | str]]:
    """Validate explicit pairs ``[[teacher layer, student layer], ...]``."""
    if not isinstance(spec, (list, tuple)) or not spec:
        raise ConfigError(f"layer pairs must be 'auto' or a list of [teacher layer, student layer], got {spec!r}")
    out = []
    for item in spec:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise ConfigError(f"layer pair {item!r} must be [teacher layer, student layer] (index or module name)")
        out.append((item[0], item[1]))
    return out


__all__ = ["Layer", "as_map", "as_vector", "available", "feature_layers", "hierarchical", "match",
           "parse_pairs", "resolve_layer", "spread"]
