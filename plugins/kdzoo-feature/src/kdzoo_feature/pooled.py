"""Pooled-feature matching, as timm's ``FeatureDistillationTask`` (timm/task/distillation.py): the
student's pre-logit features ``[B, Ds]``, through a learned linear projector when ``Ds != Dt``,
matched to the teacher's pre-logit features ``[B, Dt]`` with mean squared error (timm's
``F.mse_loss``) or cosine distance ``1 - cos``. It is FitNets' hint regression (Romero et al. 2015,
arXiv:1412.6550) at the pre-logit layer; the projector is part of the strategy (trained,
checkpointed, never exported with the student). The loss is :func:`kdzoo.losses.pooled_feature_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from kdzoo.plugin import ConfigError, Needs, Requirement, RunContext, Strategy, param
from kdzoo.losses import pooled_feature_loss


@dataclass
class PooledConfig:
    """Pooled parameters (each field: default, bounds, help)."""

    weight: float = param(
        1.0, ge=0, help="weight of the feature term (timm's ``distill_loss_weight``; labels keep weight 1).")
    loss: Literal["mse", "cosine"] = param("mse", help="``mse`` (timm) or ``cosine``.")
    projector: Literal["auto", "always"] = param(
        "auto", help="``auto`` (a linear projector only when widths differ, as timm) or ``always``.")


class PooledFeature(Strategy):
    """Pooled-feature matching: pre-logit features through a learned projector, MSE or cosine."""

    name = "pooled-feature"
    family = "feature"
    paper = "timm FeatureDistillationTask; hint regression of Romero et al. 2015, arXiv:1412.6550"
    Config = PooledConfig
    presets = {"timm": {"weight": 1.0, "loss": "mse", "projector": "auto"}}
    label_space = "any"
    uses_unlabelled = True

    def __init__(self, config: PooledConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        d_s, d_t = ctx.student.num_features, ctx.teacher.num_features
        for model, d in ((ctx.student, d_s), (ctx.teacher, d_t)):
            if d <= 0:
                raise ConfigError(f"pooled-feature: model {model.meta['name']!r} reports no num_features "
                                  f"(pre-logit width)")
        self.projector = nn.Linear(d_s, d_t) if (d_s != d_t or config.projector == "always") else nn.Identity()

    def needs(self) -> Needs:
        return Needs(Requirement(logits=True, pooled=True), Requirement(pooled=True))

    def term_weights(self) -> dict[str, float]:
        return {"pooled": self.config.weight}

    def forward(self, batch, student, teacher, step):
        return {"pooled": pooled_feature_loss(student.pooled, teacher.pooled, self.config.loss, self.projector)}
