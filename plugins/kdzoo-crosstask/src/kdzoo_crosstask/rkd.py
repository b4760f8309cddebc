"""RKD — Park, Kim, Lu & Cho, "Relational Knowledge Distillation", CVPR 2019, arXiv:1904.05068.

Distance and angle relations between the samples of a batch, following the authors' code
(lenscloth/RKD ``metric/loss.py``)::

    psi_D(i, j)    = ||e_i - e_j|| / mu,  mu = mean of the non-zero pairwise distances of the batch
    L_D            = mean_{i,j} smooth_l1(psi_D^S(i, j), psi_D^T(i, j))            (B^2 entries)
    psi_A(i, j, k) = < (e_j - e_i)/||e_j - e_i||, (e_k - e_i)/||e_k - e_i|| >   (angle at e_i)
    L_A            = mean_{i,j,k} smooth_l1(psi_A^S, psi_A^T)                      (B^3 entries)

Both are dimension- and label-space-agnostic, so they need no projector and use every sample of
the batch, labelled or not. Default weights 25 / 50 are RepDistiller's classification setting;
the ``paper`` preset is the authors' metric-learning ratio 1 / 2. The losses are
:func:`kdzoo.losses.rkd_distance_loss` and :func:`kdzoo.losses.rkd_angle_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdzoo.plugin import Needs, RunContext, Strategy, param
from kdzoo.losses import rkd_angle_loss, rkd_distance_loss

from .common import embedding, parse_layer, relational_needs


@dataclass
class RKDConfig:
    """RKD parameters (each field: default, bounds, help)."""

    distance_weight: float = param(25.0, ge=0, help="weight of the distance term (lambda_D).")
    angle_weight: float = param(50.0, ge=0, help="weight of the angle term (lambda_A); its cost grows as B^3.")
    layer: str = param(
        "pooled", help="``pooled`` (pre-logit embedding) or a feature-stage index (the map, flattened).")

    def __post_init__(self) -> None:
        parse_layer(self.layer, "strategy.rkd")


class RKD(Strategy):
    """Relational KD: match the batch's normalised distances and angles in teacher and student embeddings."""

    name = "rkd"
    family = "cross-task"
    paper = "Park et al. CVPR 2019, arXiv:1904.05068"
    Config = RKDConfig
    presets = {"paper": {"distance_weight": 1.0, "angle_weight": 2.0},
               "repdistiller": {"distance_weight": 25.0, "angle_weight": 50.0}}
    label_space = "any"
    uses_unlabelled = True

    def __init__(self, config: RKDConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.index = parse_layer(config.layer, "strategy.rkd")

    def needs(self) -> Needs:
        return relational_needs(self.index)

    def term_weights(self) -> dict[str, float]:
        return {"rkd_distance": self.config.distance_weight, "rkd_angle": self.config.angle_weight}

    def forward(self, batch, student, teacher, step):
        s, t = embedding(student, self.index), embedding(teacher, self.index)
        out = {}
        if self.config.distance_weight:
            out["rkd_distance"] = rkd_distance_loss(s, t)
        if self.config.angle_weight:
            out["rkd_angle"] = rkd_angle_loss(s, t)
        return out or {"rkd_distance": s.sum() * 0.0}
