"""kdzoo-example: logit matching for classification, registered through the ``kdzoo`` entry point.

Ba & Caruana, "Do Deep Nets Really Need to be Deep?", arXiv:1312.6184: the student regresses the
teacher's logits (the inputs of the softmax) with a squared error, on labelled and unlabelled data.
``loss = (1 - alpha) * CE(student, labels) + alpha * MSE(student logits, teacher logits)``,
the MSE averaged over samples and classes. (kdzoo-logit's ``regression-kd`` is the same loss for
regression outputs; this one is for classification logits.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

import kdzoo


def logit_mse(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Mean squared error between logits, averaged over the batch and the classes.

    Args:
        student_logits: ``[B, K]``.
        teacher_logits: ``[B, K]`` (no gradient flows into them).
    """
    return F.mse_loss(student_logits, teacher_logits.detach())


@dataclass
class LogitMSEConfig:
    """LogitMSE parameters (each field: default, bounds, help)."""

    alpha: float = kdzoo.param(
        0.5, ge=0, le=1, help="weight of the logit-matching term; the hard-label term gets ``1 - alpha``.")


class LogitMSE(kdzoo.Strategy):
    """Logit matching: mean squared error between student and teacher logits, alpha-weighted with labels."""

    name = "logit-mse"
    family = "logit"
    paper = "Ba & Caruana 2014, arXiv:1312.6184"
    Config = LogitMSEConfig
    presets = {"paper": {"alpha": 1.0}}  # the paper's mimic nets learn from the teacher's logits only
    uses_unlabelled = True

    def term_weights(self) -> dict[str, float]:
        return kdzoo.alpha_blend("logit-mse", self.config.alpha)

    def forward(self, batch, student, teacher, step):
        return {"logit-mse": logit_mse(student.logits, teacher.logits)}


@kdzoo.hookimpl
def register_strategies(register):
    register(LogitMSE)
