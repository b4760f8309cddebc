"""SP — Tung & Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019, arXiv:1907.09682.

Following the reference implementation (RepDistiller ``distiller_zoo/SP.py``, "verified by the
original author")::

    G   = row_normalise(F F^T)            F = [B, D] activations (a map is flattened to C*H*W)
    L   = ||G_T - G_S||_F^2 / B^2

The ``B x B`` similarity matrices make it dimension- and label-space-agnostic; every sample of
the batch counts, labelled or not. gamma = 3000 is the paper's/RepDistiller's weight. The loss is
:func:`kdzoo.losses.sp_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdzoo.plugin import Needs, RunContext, Strategy, param
from kdzoo.losses import sp_loss

from .common import embedding, parse_layer, relational_needs


@dataclass
class SPConfig:
    """SP parameters (each field: default, bounds, help)."""

    gamma: float = param(3000.0, ge=0, help="weight of the SP term.")
    layer: str = param(
        "pooled", help="``pooled`` (pre-logit embedding) or a feature-stage index (e.g. ``-1``: the last map, as in the"
                 " paper and RepDistiller).")

    def __post_init__(self) -> None:
        parse_layer(self.layer, "strategy.sp")


class SP(Strategy):
    """Similarity-preserving KD: match the batch's row-normalised similarity matrices."""

    name = "sp"
    family = "cross-task"
    paper = "Tung & Mori ICCV 2019, arXiv:1907.09682"
    Config = SPConfig
    presets = {"paper": {"gamma": 3000.0, "layer": "-1"}}
    label_space = "any"
    uses_unlabelled = True

    def __init__(self, config: SPConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.index = parse_layer(config.layer, "strategy.sp")

    def needs(self) -> Needs:
        return relational_needs(self.index)

    def term_weights(self) -> dict[str, float]:
        return {"sp": self.config.gamma}

    def forward(self, batch, student, teacher, step):
        return {"sp": sp_loss(embedding(student, self.index), embedding(teacher, self.index))}
