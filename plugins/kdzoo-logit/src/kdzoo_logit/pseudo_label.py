"""Teacher pseudo-labels: cross-entropy on the teacher's argmax (hard-target distillation).

The "hard targets" variant discussed by Hinton et al. 2015 (arXiv:1503.02531) and used as
pseudo-labelling in self-training (Lee 2013); every sample, labelled or not, gets the teacher's
top-1 class as its target.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdzoo.plugin import Strategy, alpha_blend, param
from kdzoo.losses import pseudo_label_loss


@dataclass
class PseudoLabelConfig:
    """PseudoLabel parameters (each field: default, bounds, help)."""

    alpha: float = param(0.9, ge=0, le=1, help="weight of the pseudo-label term; true labels get ``1 - alpha``.")


class PseudoLabel(Strategy):
    """Hard pseudo-labels: cross-entropy against the teacher's argmax on every sample."""

    name = "pseudo-label"
    family = "logit"
    paper = "Hinton et al. 2015 (hard targets), arXiv:1503.02531"
    Config = PseudoLabelConfig
    uses_unlabelled = True

    def term_weights(self) -> dict[str, float]:
        return alpha_blend("pseudo", self.config.alpha)

    def forward(self, batch, student, teacher, step):
        return {"pseudo": pseudo_label_loss(student.logits, teacher.logits)}
