"""Regression distillation: the student regresses the teacher's outputs with MSE.

The regression form of model compression (Bucilua et al. 2006, "Model Compression"; Ba & Caruana
2014, arXiv:1312.6184, who regress logits). ``loss = (1 - alpha) * MSE(s, y) + alpha * MSE(s, t)``;
the teacher term uses every sample, labelled or not.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdzoo.plugin import Strategy, alpha_blend, param
from kdzoo.losses import logit_mse_loss


@dataclass
class RegressionKDConfig:
    """RegressionKD parameters (each field: default, bounds, help)."""

    alpha: float = param(0.5, ge=0, le=1, help="weight of the teacher-output term; targets get ``1 - alpha``.")


class RegressionKD(Strategy):
    """Regression KD: mean squared error to the teacher's outputs, alpha-weighted with targets."""

    name = "regression-kd"
    family = "logit"
    paper = "Ba & Caruana 2014, arXiv:1312.6184"
    Config = RegressionKDConfig
    tasks = frozenset({"regression"})
    uses_unlabelled = True

    def term_weights(self) -> dict[str, float]:
        return alpha_blend("distill", self.config.alpha)

    def forward(self, batch, student, teacher, step):
        return {"distill": logit_mse_loss(student.logits, teacher.logits)}
