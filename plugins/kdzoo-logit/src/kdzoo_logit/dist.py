"""DIST — Huang, You, Wang, Qian & Xu, "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022,
arXiv:2205.10536.

KL matches the teacher's class probabilities exactly; DIST asks only for the same *relations*, by
Pearson correlation (invariant to shift and scale): with ``Y = softmax(z / T)``,

``loss = ce_weight * CE + beta * inter + gamma * intra`` with
``inter = T^2 (1 - mean_i rho(Y_s[i, :], Y_t[i, :]))`` and ``intra = T^2 (1 - mean_k rho(Y_s[:, k], Y_t[:, k]))``:

the inter-class relation (each sample's ranking of the classes) and the intra-class relation (each
class's scores across the batch). Defaults are the authors' ImageNet setting (``beta = gamma = 1``,
``T = 1``, CE weight 1). The relations use every sample of the batch, labelled or not. The terms are
:func:`kdzoo.losses.dist_terms`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdzoo.plugin import Strategy, param
from kdzoo.losses import dist_terms


@dataclass
class DISTConfig:
    """DIST parameters (each field: default, bounds, help)."""

    beta: float = param(1.0, ge=0, search=(0.25, 4), log=True,
                         help="weight of the inter-class relation term.")
    gamma: float = param(1.0, ge=0, search=(0.25, 4), log=True,
                          help="weight of the intra-class relation term.")
    temperature: float = param(1.0, gt=0, search=(1, 8), log=True,
                                help="softmax temperature T (the terms are scaled by T^2).")
    ce_weight: float = param(1.0, ge=0, help="weight of the hard-label cross-entropy.")


class DIST(Strategy):
    """DIST: inter- and intra-class relations of the softened outputs matched by Pearson correlation."""

    name = "dist"
    family = "logit"
    paper = "Huang et al. NeurIPS 2022, arXiv:2205.10536"
    Config = DISTConfig
    # paper: the ImageNet setting of the paper (beta = gamma = tau = 1); cifar: the authors' CIFAR-100
    # setting (beta = gamma = 2, tau = 4), which also suits the small CPU data sets.
    presets = {"paper": {"beta": 1.0, "gamma": 1.0, "temperature": 1.0, "ce_weight": 1.0},
               "cifar": {"beta": 2.0, "gamma": 2.0, "temperature": 4.0, "ce_weight": 1.0},
               "cpu": {"beta": 2.0, "gamma": 2.0, "temperature": 4.0, "ce_weight": 1.0}}
    uses_unlabelled = True

    def term_weights(self) -> dict[str, float]:
        return {"inter": self.config.beta, "intra": self.config.gamma, "label": self.config.ce_weight}

    def forward(self, batch, student, teacher, step):
        inter, intra = dist_terms(student.logits, teacher.logits, self.config.temperature)
        return {"inter": inter, "intra": intra}
