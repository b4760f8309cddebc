"""kdzoo-example: logit matching for classification, registered through the ``kdzoo`` entry point.

Ba & Caruana, "Do Deep Nets Really Need to be Deep?", arXiv:1312.6184: the student regresses the
teacher's logits (the inputs of the softmax) with a squared error, on labelled and unlabelled data.
``loss = (1 - alpha) * CE(student, labels) + alpha * MSE(student logits, teacher logits)``,
the MSE averaged over samples and classes. (kdzoo-logit's ``regression-kd`` is the same loss for
regression outputs; this one is for classification logits.) The loss itself is kdzoo's shared
``kdzoo.losses.logit_mse_loss``: a plugin reuses the public losses instead of copying them.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdzoo.plugin import Strategy, alpha_blend, hookimpl, param
from kdzoo.losses import logit_mse_loss


@dataclass
class LogitMSEConfig:
    """LogitMSE parameters (each field: default, bounds, help)."""

    alpha: float = param(
        0.5, ge=0, le=1, help="weight of the logit-matching term; the hard-label term gets ``1 - alpha``.")


class LogitMSE(Strategy):
    """Logit matching: mean squared error between student and teacher logits, alpha-weighted with labels."""

    name = "logit-mse"
    family = "logit"
    paper = "Ba & Caruana 2014, arXiv:1312.6184"
    Config = LogitMSEConfig
    presets = {"paper": {"alpha": 1.0}}  # the paper's mimic nets learn from the teacher's logits only
    uses_unlabelled = True

    def term_weights(self) -> dict[str, float]:
        return alpha_blend("logit-mse", self.config.alpha)

    def forward(self, batch, student, teacher, step):
        return {"logit-mse": logit_mse_loss(student.logits, teacher.logits)}


@hookimpl
def register_strategies(register):
    register(LogitMSE)
