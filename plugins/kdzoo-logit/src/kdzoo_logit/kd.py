"""Hinton KD — Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", arXiv:1503.02531.

``loss = (1 - alpha) * CE(student, labels) + alpha * T^2 * KL(softmax(t/T) || softmax(s/T))``,
KL averaged over the batch (``batchmean``); the ``T^2`` keeps gradient magnitudes comparable
across temperatures. The KL term uses every sample of the batch, labelled or not. The loss is
:func:`kdzoo.losses.kd_loss`.

``logit_standardize`` applies logit standardization (Sun et al., "Logit Standardization in
Knowledge Distillation", CVPR 2024, arXiv:2403.01427): both models' logits are z-scored per sample
before the softmax, so the student matches the teacher's logit *relations* rather than their range;
``temperature`` is then the paper's base temperature (preset ``logit-std``: 2, the authors' KD
command; their KD weight 9 against CE weight 0.1 becomes ``alpha = 9 / 9.1``, the same ratio).
"""

from __future__ import annotations

from dataclasses import dataclass

from kdzoo.plugin import Strategy, alpha_blend, param
from kdzoo.losses import kd_loss


@dataclass
class KDConfig:
    """KD parameters (each field: default, bounds, help)."""

    temperature: float = param(4.0, gt=0, search=(1, 16), log=True, help="softening temperature T.")
    alpha: float = param(
        0.9, ge=0, le=1, help="weight of the distillation term; the hard-label term gets ``1 - alpha``.")
    logit_standardize: bool = param(
        False, help="z-score each sample's logits before the softmax (logit standardization, arXiv:2403.01427).")


class KD(Strategy):
    """Hinton knowledge distillation: temperature-softened teacher outputs, alpha-weighted with labels."""

    name = "kd"
    family = "logit"
    paper = "Hinton et al. 2015, arXiv:1503.02531"
    Config = KDConfig
    presets = {"paper": {"temperature": 4.0, "alpha": 0.9}, "soft-only": {"alpha": 1.0},
               "logit-std": {"logit_standardize": True, "temperature": 2.0, "alpha": 9 / 9.1}}
    uses_unlabelled = True

    def term_weights(self) -> dict[str, float]:
        return alpha_blend("kd", self.config.alpha)

    def forward(self, batch, student, teacher, step):
        return {"kd": kd_loss(student.logits, teacher.logits, self.config.temperature,
                                self.config.logit_standardize)}
