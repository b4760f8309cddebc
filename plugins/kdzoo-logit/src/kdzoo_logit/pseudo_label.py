"""Teacher pseudo-labels: cross-entropy on the teacher's argmax (hard-target distillation).

The "hard targets" variant discussed by Hinton et al. 2015 (arXiv:1503.02531) and used as
pseudo-labelling in self-training (Lee 2013); every sample, labelled or not, gets the teacher's
top-1 class as its target.
"""

from __future__ import annotations

from dataclasses import dataclass

import kdzoo
from kdzoo.losses import pseudo_label_loss


@dataclass
class PseudoLabelConfig:
    """Attributes:
    alpha: weight of the pseudo-label term; true labels get ``1 - alpha``.
    """

    alpha: float = 0.9

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise kdzoo.ConfigError(f"strategy.pseudo-label.alpha must be in [0, 1], got {self.alpha}")


class PseudoLabel(kdzoo.Strategy):
    """Hard pseudo-labels: cross-entropy against the teacher's argmax on every sample."""

    name = "pseudo-label"
    family = "logit"
    paper = "Hinton et al. 2015 (hard targets), arXiv:1503.02531"
    Config = PseudoLabelConfig
    uses_unlabelled = True

    def term_weights(self) -> dict[str, float]:
        return kdzoo.alpha_blend("pseudo", self.config.alpha)

    def forward(self, batch, student, teacher, step):
        return {"pseudo": pseudo_label_loss(student.logits, teacher.logits)}
