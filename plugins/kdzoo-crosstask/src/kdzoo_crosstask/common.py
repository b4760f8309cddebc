"""Shared plumbing of the cross-task strategies: which representation they compare, and its width."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from kdzoo.plugin import ConfigError, Needs, Outputs, Requirement

if TYPE_CHECKING:
    from kdzoo.plugin import KDModel


def parse_layer(layer: str, where: str) -> int | None:
    """``"pooled"`` -> ``None`` (the pre-logit embedding); ``"-1"``/``"1"`` -> that feature stage.

    Raises:
        kdzoo.ConfigError: for anything else.
    """
    text = str(layer).strip()
    if text == "pooled":
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{where}.layer must be 'pooled' or a feature-stage index (e.g. -1, 1), "
                          f"got {layer!r}") from None


def requirement(index: int | None, logits: bool = False) -> Requirement:
    """What one model must output for representation ``index`` (``None``: pooled)."""
    if index is None:
        return Requirement(logits=logits, pooled=True)
    return Requirement(logits=logits, features=(index,))


def relational_needs(index: int | None) -> Needs:
    """Student logits (for the label loss) and the representation of both models."""
    return Needs(requirement(index, logits=True), requirement(index))


def embedding(out: Outputs, index: int | None) -> Tensor:
    """The representation a loss compares: ``[B, D]`` pooled, or a feature map flattened to ``[B, C*H*W]``."""
    if index is None:
        return out.pooled
    return out.features[index].flatten(1)


def pooled_width(model: KDModel, data_shape: tuple[int, ...], device: torch.device) -> int:
    """Width ``D`` of ``model``'s pooled embedding: ``num_features``, else measured on two zero inputs."""
    if model.num_features:
        return model.num_features
    was_training = model.training
    model.eval()  # measuring must not move BN statistics
    try:
        with torch.no_grad():
            out = model.outputs(torch.zeros(2, *data_shape, device=device), Requirement(pooled=True))
    finally:
        model.train(was_training)
    return int(out.pooled.shape[1])


__all__ = ["embedding", "parse_layer", "pooled_width", "relational_needs", "requirement"]
