"""DKD — Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022, arXiv:2203.08679.

KD splits into target-class KD (binary: target vs all others) and non-target-class KD (the
distribution over non-target classes), re-weighted as ``alpha * TCKD + beta * NCKD``, both times
``T^2`` and averaged over the batch, with a linear warm-up ``min(epoch / warmup, 1)``.
DKD needs a target class: labelled samples use their label, unlabelled ones the teacher's argmax.
The terms are :func:`kdzoo.losses.dkd_terms`.

``logit_standardize`` z-scores both models' logits per sample before the softmax (Sun et al.,
"Logit Standardization in Knowledge Distillation", CVPR 2024, arXiv:2403.01427); ``temperature`` is
then the paper's base temperature (preset ``logit-std``: 2, DKD's weights otherwise unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kdzoo.plugin import Strategy, param
from kdzoo.losses import dkd_terms


@dataclass
class DKDConfig:
    """DKD parameters (each field: default, bounds, help)."""

    alpha: float = param(1.0, ge=0, search=(0.25, 4), log=True, help="TCKD weight.")
    beta: float = param(8.0, ge=0, search=(1, 16), log=True, help="NCKD weight.")
    temperature: float = param(4.0, gt=0, search=(1, 8), log=True, help="T.")
    warmup_epochs: float = param(20.0, ge=0, help="epochs of linear warm-up of both terms.")
    ce_weight: float = param(1.0, ge=0, help="weight of the hard-label cross-entropy.")
    logit_standardize: bool = param(
        False, help="z-score each sample's logits before the softmax (logit standardization, arXiv:2403.01427).")


class DKD(Strategy):
    """Decoupled KD: target-class and non-target-class terms weighted separately, with warm-up."""

    name = "dkd"
    family = "logit"
    paper = "Zhao et al. CVPR 2022, arXiv:2203.08679"
    Config = DKDConfig
    presets = {"paper": {"alpha": 1.0, "beta": 8.0, "temperature": 4.0, "warmup_epochs": 20.0},
               "cpu": {"warmup_epochs": 2.0},
               "logit-std": {"logit_standardize": True, "temperature": 2.0}}
    uses_unlabelled = True

    def term_weights(self) -> dict[str, float]:
        return {"tckd": self.config.alpha, "nckd": self.config.beta, "label": self.config.ce_weight}

    def forward(self, batch, student, teacher, step):
        target = teacher.logits.argmax(-1)
        if batch.y is not None and batch.y.dim() == 1:
            target = torch.where(batch.labelled, batch.y.clamp_min(0), target)
        tckd, nckd = dkd_terms(student.logits, teacher.logits, target, self.config.temperature,
                               self.config.logit_standardize)
        warm = min(step.epoch / self.config.warmup_epochs, 1.0) if self.config.warmup_epochs > 0 else 1.0
        return {"tckd": warm * tckd, "nckd": warm * nckd}
