"""DeepInversion's BN-statistics prior: forward hooks on the teacher's BN layers.

Yin et al., "Dreaming to Distill: Data-free Knowledge Transfer via DeepInversion", CVPR 2020,
arXiv:1912.08795 (code: NVlabs/DeepInversion, ``cifar10/deepinversion_cifar10.py``):

    R_feature(x) = sum_l || mu_l(x) - running_mean_l ||_2 + || var_l(x) - running_var_l ||_2

over every BatchNorm layer ``l`` of the frozen teacher, where ``mu_l``/``var_l`` are the per-channel
batch mean and biased variance of the layer's *input* (L2 norms, not squared). The per-layer term
is :func:`kdzoo.losses.bn_statistic_loss`; the TV and L2 image priors are
:func:`kdzoo.losses.tv_loss` and :func:`kdzoo.losses.image_l2_loss`.

The teacher's BN layers stay in eval mode: their running statistics are the targets and never move.
A teacher without BN layers is a configuration error, never a silent zero.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from kdzoo.plugin import ConfigError
from kdzoo.losses import bn_statistic_loss


def bn_layers(model: nn.Module) -> list[_BatchNorm]:
    """Every BatchNorm layer of ``model`` that tracks running statistics."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


def require_bn(model: nn.Module, who: str) -> list[_BatchNorm]:
    """The teacher's BN layers, or a :class:`kdzoo.ConfigError` naming the fix.

    Args:
        model: the teacher.
        who: what needs the prior (``deep-inversion``, ``dafl with bn > 0``), for the message.
    """
    layers = bn_layers(model)
    if not layers:
        name = getattr(model, "meta", {}).get("name", type(model).__name__)
        raise ConfigError(
            f"{who} needs a teacher with BatchNorm layers (the BN-statistics prior matches their running "
            f"statistics), but teacher {name!r} has none; use a BN teacher (e.g. --teacher lenet5 --set "
            f"teacher.kwargs.batchnorm=true, or test_resnet) or turn the prior off (bn=0)")
    return layers


class BNStatisticsPrior:
    """Records ``R_feature`` while active: ``with prior: teacher(x); loss = prior.loss()``.

    Hooks are registered on entry and removed on exit, so a teacher shared across seeds or
    strategies never keeps stray hooks and plain teacher forwards cost nothing.

    Args:
        model: the frozen teacher (BN layers in eval mode).
        who: what uses the prior, for the error message when the teacher has no BN layer.
    """

    def __init__(self, model: nn.Module, who: str) -> None:
        self.layers = require_bn(model, who)
        self._handles: list = []
        self._values: list[Tensor] = []

    def _hook(self, module: _BatchNorm, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        self._values.append(bn_statistic_loss(inputs[0], module.running_mean, module.running_var))

    def __enter__(self) -> BNStatisticsPrior:
        self._values = []
        self._handles = [m.register_forward_hook(self._hook) for m in self.layers]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def loss(self) -> Tensor:
        """Sum of ``R_feature`` over the layers seen since the last call (then cleared)."""
        if not self._values:
            raise RuntimeError("BN-statistics prior: no BN layer ran; call the teacher inside `with prior:`")
        total = sum(self._values[1:], self._values[0])
        self._values = []
        return total


__all__ = ["BNStatisticsPrior", "bn_layers", "require_bn"]
