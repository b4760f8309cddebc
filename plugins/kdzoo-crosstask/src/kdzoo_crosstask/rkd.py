"""RKD — Park, Kim, Lu & Cho, "Relational Knowledge Distillation", CVPR 2019, arXiv:1904.05068.

Distance and angle relations between the samples of a batch, following the authors' code
(lenscloth/RKD ``metric/loss.py``)::

    psi_D(i, j)    = ||e_i - e_j|| / mu,  mu = mean of the non-zero pairwise distances of the batch
    L_D            = mean_{i,j} smooth_l1(psi_D^S(i, j), psi_D^T(i, j))            (B^2 entries)
    psi_A(i, j, k) = < (e_j - e_i)/||e_j - e_i||, (e_k - e_i)/||e_k - e_i|| >   (angle at e_i)
    L_A            = mean_{i,j,k} smooth_l1(psi_A^S, psi_A^T)                      (B^3 entries)

Both are dimension- and label-space-agnostic, so they need no projector and use every sample of
the batch, labelled or not. Default weights 25 / 50 are RepDistiller's classification setting;
the ``paper`` preset is the authors' metric-learning ratio 1 / 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

import kdzoo

from .common import embedding, parse_layer, relational_needs


def pairwise_distances(e: Tensor, eps: float = 1e-12) -> Tensor:
    """Euclidean distance matrix ``[B, B]`` of ``e [B, D]`` with an exact zero diagonal."""
    sq = e.pow(2).sum(1)
    d = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2 * e @ e.t()).clamp(min=eps).sqrt().clone()
    d[range(len(e)), range(len(e))] = 0
    return d


def _normalised_distances(e: Tensor) -> Tensor:
    d = pairwise_distances(e)
    positive = d[d > 0]
    return d / positive.mean() if positive.numel() else d


def rkd_distance(student: Tensor, teacher: Tensor) -> Tensor:
    """RKD distance loss between embeddings ``student [B, D_s]`` and ``teacher [B, D_t]``."""
    with torch.no_grad():
        t = _normalised_distances(teacher.float())
    return F.smooth_l1_loss(_normalised_distances(student), t)


def _angles(e: Tensor) -> Tensor:
    diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)  # [i, j] = e_j - e_i
    return torch.bmm(diff, diff.transpose(1, 2)).reshape(-1)


def rkd_angle(student: Tensor, teacher: Tensor) -> Tensor:
    """RKD angle loss between embeddings ``student [B, D_s]`` and ``teacher [B, D_t]``."""
    with torch.no_grad():
        t = _angles(teacher.float())
    return F.smooth_l1_loss(_angles(student), t)


@dataclass
class RKDConfig:
    """Attributes:
    distance_weight: weight of the distance term (lambda_D).
    angle_weight: weight of the angle term (lambda_A); its cost grows as B^3.
    layer: ``pooled`` (pre-logit embedding) or a feature-stage index (the map, flattened).
    """

    distance_weight: float = 25.0
    angle_weight: float = 50.0
    layer: str = "pooled"

    def __post_init__(self) -> None:
        if self.distance_weight < 0 or self.angle_weight < 0:
            raise kdzoo.ConfigError("strategy.rkd weights must be >= 0")
        parse_layer(self.layer, "strategy.rkd")


class RKD(kdzoo.Strategy):
    """Relational KD: match the batch's normalised distances and angles in teacher and student embeddings."""

    name = "rkd"
    family = "cross-task"
    paper = "Park et al. CVPR 2019, arXiv:1904.05068"
    Config = RKDConfig
    presets = {"paper": {"distance_weight": 1.0, "angle_weight": 2.0},
               "repdistiller": {"distance_weight": 25.0, "angle_weight": 50.0}}
    label_space = "any"
    uses_unlabelled = True

    def __init__(self, config: RKDConfig, ctx: kdzoo.RunContext) -> None:
        super().__init__(config, ctx)
        self.index = parse_layer(config.layer, "strategy.rkd")

    def needs(self) -> kdzoo.Needs:
        return relational_needs(self.index)

    def term_weights(self) -> dict[str, float]:
        return {"rkd_distance": self.config.distance_weight, "rkd_angle": self.config.angle_weight}

    def forward(self, batch, student, teacher, step):
        s, t = embedding(student, self.index), embedding(teacher, self.index)
        out = {}
        if self.config.distance_weight:
            out["rkd_distance"] = rkd_distance(s, t)
        if self.config.angle_weight:
            out["rkd_angle"] = rkd_angle(s, t)
        return out or {"rkd_distance": s.sum() * 0.0}
