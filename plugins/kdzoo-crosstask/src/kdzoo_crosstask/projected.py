"""Projected-feature transfer through a learned linear projector, standard or inverted.

* ``student-to-teacher`` (FitNets-style regressor; Romero et al., arXiv:1412.6550)::

      L = mean (P f_S - f_T)^2        P: D_s -> D_t, trained with the student

* ``inverted`` — Auty, Miles, Kolbeinsson & Mikolajczyk, "Learning to Project for Cross-Task
  Knowledge Distillation", arXiv:2403.14494 (2024)::

      L = mean (f_S - P f_T)^2        P: D_t -> D_s, trained with the student

  The projector maps the *teacher* into the student's space, so it can learn to drop the
  teacher's task-specific directions instead of forcing the student to reproduce them; the
  authors show the loss splits into knowledge transfer plus a spectral regulariser, and that it
  helps even with a randomly initialised teacher (hence the random-teacher control).

``f`` is the pooled pre-logit embedding of each model; every sample of the batch counts,
labelled or not. The projector is a sub-module: it reaches the optimiser and the checkpoint. The loss
is :func:`kdzoo.losses.pooled_feature_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from kdzoo.plugin import Needs, RunContext, Strategy, param
from kdzoo.losses import pooled_feature_loss

from .common import pooled_width, relational_needs


@dataclass
class ProjectedConfig:
    """Projected parameters (each field: default, bounds, help)."""

    weight: float = param(1.0, ge=0, help="weight of the feature term.")
    projection: Literal["student-to-teacher", "inverted"] = param(
        "student-to-teacher", help="``student-to-teacher`` (FitNets-style) or ``inverted`` (Auty et al. 2024).")


class ProjectedFeature(Strategy):
    """Feature transfer through a learned linear projector (student -> teacher, or inverted teacher -> student)."""

    name = "projected-feature"
    family = "cross-task"
    paper = "Auty et al. 2024, arXiv:2403.14494 (inverted); Romero et al. 2015, arXiv:1412.6550"
    Config = ProjectedConfig
    presets = {"inverted": {"projection": "inverted"}, "fitnets": {"projection": "student-to-teacher"}}
    label_space = "any"
    uses_unlabelled = True

    def __init__(self, config: ProjectedConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        d_s = pooled_width(ctx.student, ctx.data_shape, ctx.device)
        d_t = pooled_width(ctx.teacher, ctx.data_shape, ctx.device)
        self.inverted = config.projection == "inverted"
        self.projector = nn.Linear(d_t, d_s) if self.inverted else nn.Linear(d_s, d_t)

    def needs(self) -> Needs:
        return relational_needs(None)

    def term_weights(self) -> dict[str, float]:
        return {"feature": self.config.weight}

    def forward(self, batch, student, teacher, step):
        return {"feature": pooled_feature_loss(student.pooled, teacher.pooled, "mse", self.projector,
                                              project="teacher" if self.inverted else "student")}
