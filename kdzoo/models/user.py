"""Your own ``nn.Module`` teachers and students: wrapped so every strategy treats them like a timm model.

The model half of :mod:`kdzoo.user`: :class:`HookedNet` gives any module timm's feature API with
forward hooks (intermediate features are the outputs of named sub-modules, ``feature_layers``;
"pooled" features the input of the classifier module, ``classifier``), :func:`wrap_module` makes it
a :class:`~kdzoo.models.wrapper.KDModel`, and :func:`student_copy` gives each seed its own student.
Inputs reach a user model untouched (no resize, no normalisation) unless its ``input_size``,
``mean`` or ``std`` are given. ``kdzoo.user`` re-exports these names.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from ..contract.errors import ConfigError, MissingOutput
from .wrapper import KDModel


class HookedNet(nn.Module):
    """A user's module behind ``forward_intermediates``/``forward_head``/``get_classifier``.

    Args:
        module: the user's network; ``module(x)`` gives logits ``[B, K]``.
        feature_layers: names (as in ``module.named_modules()``) of the intermediate features.
        classifier: name of the final classifier module (its input is the pooled feature).
    """

    def __init__(self, module: nn.Module, feature_layers: list[str], classifier: str | None) -> None:
        super().__init__()
        self.module = module
        modules = dict(module.named_modules())
        for name in [*feature_layers, *([classifier] if classifier else [])]:
            if name not in modules or not name:
                raise ConfigError(f"module {name!r} not found in {type(module).__name__}; valid: "
                                  f"{', '.join(n for n in modules if n)}")
        self.layer_names, self.classifier_name = list(feature_layers), classifier
        self.feature_info: list[dict[str, Any]] = []

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x)

    def _run(self, x: Tensor, names: list[str], pooled: bool) -> tuple[Tensor, list[Tensor], Tensor | None]:
        modules = dict(self.module.named_modules())
        captured: dict[str, Tensor] = {}
        handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: captured.__setitem__(n, o)) for n in names]
        if pooled:
            if self.classifier_name is None:
                raise MissingOutput(f"{type(self.module).__name__} has no classifier module (no nn.Linear) to take "
                                    "pooled features from; name one with classifier=")
            handles.append(modules[self.classifier_name].register_forward_pre_hook(
                lambda m, args: captured.__setitem__("__pooled__", args[0])))
        try:
            logits = self.module(x)
        finally:
            for h in handles:
                h.remove()
        return logits, [captured[n] for n in names], captured.get("__pooled__")

    def forward_intermediates(self, x: Tensor, indices: list[int]) -> tuple[Tensor, list[Tensor]]:
        """``(pooled [B, D], [feature maps])`` for the feature layers at ``indices``."""
        _, feats, pooled = self._run(x, [self.layer_names[i] for i in indices], pooled=True)
        return pooled.flatten(1), feats

    def forward_features(self, x: Tensor) -> Tensor:
        return self._run(x, [], pooled=True)[2].flatten(1)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return x if pre_logits else self.get_classifier()(x)

    def get_classifier(self) -> nn.Module:
        return dict(self.module.named_modules())[self.classifier_name]

    def measure(self, sample: Tensor) -> None:
        """Fill ``feature_info`` (channels, reduction, module name) from one dry forward of ``sample``."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                _, feats, _ = self._run(sample, self.layer_names, pooled=False)
        finally:
            self.train(was_training)
        size = sample.shape[-1]
        self.feature_info = [dict(num_chs=int(f.shape[1]), reduction=size / f.shape[-1] if f.dim() == 4 else 1.0,
                                  module=n) for n, f in zip(self.layer_names, feats)]


def default_layers(module: nn.Module, sample: Tensor) -> tuple[list[str], str | None]:
    """Automatic feature layers (the last top-level child at each ``[B, C, H, W]`` resolution above
    1x1) and the classifier (the last ``nn.Linear``)."""
    linears = [n for n, m in module.named_modules() if isinstance(m, nn.Linear)]
    shapes: dict[str, tuple] = {}
    children = list(module.named_children())
    handles = [m.register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, tuple(o.shape))
                                       if isinstance(o, Tensor) else None) for n, m in children]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(sample)
    finally:
        module.train(was_training)
        for h in handles:
            h.remove()
    by_size: dict[tuple, str] = {}
    for name, _ in children:
        shape = shapes.get(name)
        if shape is not None and len(shape) == 4 and shape[2:] != (1, 1):  # 1x1: a global pool, not a stage
            by_size[shape[2:]] = name  # the last child at each resolution
    return list(by_size.values()), (linears[-1] if linears else None)


def wrap_module(module: nn.Module, sample: Tensor, *, name: str, classes: list[str], task: str,
                feature_layers: list[str] | None = None, classifier: str | None = None,
                input_size: list[int] | None = None, mean: list[float] | None = None, std: list[float] | None = None):
    """A :class:`kdzoo.models.KDModel` around a user's module (``sample``: one data-space batch ``[1, ...]``)."""
    shape = list(sample.shape[1:])
    if input_size and len(shape) == 3:
        shape = [shape[0], *input_size]
    probe = sample if len(shape) != 3 else torch.nn.functional.interpolate(sample, size=tuple(shape[1:])) \
        if tuple(shape[1:]) != tuple(sample.shape[2:]) else sample
    auto_layers, auto_classifier = default_layers(module, probe)
    net = HookedNet(module, auto_layers if feature_layers is None else feature_layers, classifier or auto_classifier)
    net.measure(probe)
    meta = {"name": name, "kwargs": {"feature_layers": net.layer_names, "classifier": net.classifier_name},
            "source": "user", "num_classes": len(classes), "input_shape": shape, "mean": mean, "std": std,
            "classes": list(classes), "task": task}
    return KDModel(net, meta)


# -- datasets ---------------------------------------------------------------------------------------


def student_copy(module: nn.Module) -> nn.Module:
    """Each seed trains its own copy of the student object (the caller's object is left as given)."""
    return copy.deepcopy(module)


__all__ = ["HookedNet", "default_layers", "student_copy", "wrap_module"]
