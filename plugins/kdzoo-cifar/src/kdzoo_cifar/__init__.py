"""kdzoo-cifar: RepDistiller's CIFAR architectures as registered models, through the ``kdzoo`` entry point.

``resnet8`` ... ``resnet110``, ``resnet8x4``, ``resnet32x4``, ``resnet50-cifar``, ``wrn-16-1`` ... ``wrn-40-2``,
``vgg8-cifar``/``vgg11-cifar``/``vgg13-cifar``, ``mobilenetv2-cifar``, ``shufflev1``, ``shufflev2``
(:mod:`kdzoo_cifar.models`; ``REPDISTILLER_NAMES`` maps them to RepDistiller's names); the recipes that
pair them are the ``cifar100-mdistiller`` suite of ``registry.yaml``.
"""

from __future__ import annotations

from kdzoo.plugin import hookimpl

from .models import REPDISTILLER_NAMES, factories


@hookimpl
def register_models(register):
    for name, (factory, description) in factories().items():
        register(name, factory, features="the stage outputs RepDistiller's is_feat returns; pooled pre-logits",
                 description=description, aliases=aliases(name))


def aliases(name: str) -> tuple[str, ...]:
    """RepDistiller's and mdistiller's spellings of ``name`` (``wrn_40_2``, ``ShuffleV1``, ``mobile_half``), except
    those timm already owns (``vgg11``, ``vgg13``: timm's ImageNet VGGs keep their names)."""
    spellings = {REPDISTILLER_NAMES[name]} | ({"mobile_half"} if name == "mobilenetv2-cifar" else set())
    return tuple(sorted(s for s in spellings if s != name and s not in TIMM_OWNED))


TIMM_OWNED = {"vgg11", "vgg13", "resnet50"}  # RepDistiller spellings that are timm model names too


__all__ = ["REPDISTILLER_NAMES", "factories"]
