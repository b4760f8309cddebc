"""REFILLED — Ye, Lu & Zhan, "Distilling Cross-Task Knowledge via Relationship Matching", CVPR 2020
(extended as "Generalized Knowledge Distillation via Relationship Matching", arXiv:2205.01915).

Two stages, following the authors' code (njulus/REFILLED ``Train.py``):

Stage 1, ``relation`` (embedding): semi-hard triplets ``(a, p, n)`` are mined on the student's
L2-normalised embedding with the student's labels (``0 < d_an - d_ap <= margin``, margin 0.2,
as pytorch-metric-learning's ``TripletMarginMiner``), and the teacher's comparison of each triplet
is the soft target::

    P^X = sigmoid((d^X_an - d^X_ap) / tau1)     X = T, S; distances on normalised embeddings
    L1  = sum_triplets KL([P^T, 1 - P^T] || [P^S, 1 - P^S]) / (2 * n_triplets)

(the reduction of the code: ``KLDivLoss(batchmean)`` over the two probabilities stacked into a
``[2n, 1]`` column), weighted 1000. With ``embedding_only`` the stage trains the embedding alone
(no hard-label term), as in the code. Positives are distinct samples: a labelled image drawn
twice into one batch is not its own positive.

Stage 2, ``classifier`` (local classifier distillation): class centres ``c_k`` = normalised mean
teacher embedding of the student's labelled class-``k`` train images (computed once, at start);
the teacher's logits over the classes present among the batch's labels are ``f_T(x) c_k^T``, and::

    L2 = CE(S(x), y) + lambda * KL(softmax(t / tau2) || softmax(S(x)[:, batch classes] / tau2))

(KL ``batchmean``, no ``tau2^2`` factor, lambda = 100, tau2 = 2). Deviations, both options: the
released code multiplies the *student's* embedding with the teacher's centres (it only runs
same-width pairs); the paper's teacher-side classifier is used here, which works for any widths.
``unlabelled: true`` also applies the stage-2 term to the batch's unlabelled samples (the code
trains on labelled batches only).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdzoo.plugin import Needs, Requirement, RunContext, Stage, Strategy, param, zero_like_graph
from kdzoo.losses import local_classifier_kd_loss, semihard_triplets, triplet_relation_loss

from .probe import class_centres, embed


@dataclass
class REFILLEDConfig:
    """REFILLED parameters (each field: default, bounds, help)."""

    relation_fraction: float = param(
        0.5, ge=0, lt=1, help="share of the step budget for stage 1 (the rest is stage 2); 0 skips it.")
    relation_weight: float = param(1000.0, help="weight of the stage-1 term (1000 in the code).")
    tau1: float = param(4.0, gt=0, help="stage-1 temperature.")
    margin: float = param(0.2, help="the semi-hard miner's margin.")
    embedding_only: bool = param(
        True, help="stage 1 trains the embedding alone (no hard-label term), as in the code.")
    classifier_weight: float = param(100.0, help="weight lambda of the stage-2 term.")
    tau2: float = param(2.0, gt=0, help="stage-2 temperature.")
    local: bool = param(
        True, help="restrict the teacher's classifier to the classes among the batch's labels (else all).")
    unlabelled: bool = param(
        False, help="apply the stage-2 term to unlabelled samples too (the code: labelled only).")


class REFILLED(Strategy):
    """REFILLED: triplet relationship matching, then distillation of the teacher's local class-centre classifier."""

    name = "refilled"
    family = "cross-task"
    paper = "Ye et al. CVPR 2020 (TPAMI extension arXiv:2205.01915)"
    Config = REFILLEDConfig
    presets = {"paper": {}, "semi-supervised": {"unlabelled": True, "embedding_only": False}}
    label_space = "any"
    uses_unlabelled = True

    def __init__(self, config: REFILLEDConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        labelled = ctx.splits.labelled
        emb = embed(ctx.teacher, ctx.bundle.x, labelled, device=ctx.device)
        y = ctx.bundle.y[torch.as_tensor(labelled, dtype=torch.long)].to(emb.device)
        self.register_buffer("centres", class_centres(emb, y, len(ctx.classes)), persistent=False)

    def needs(self) -> Needs:
        return Needs(Requirement(logits=True, pooled=True), Requirement(pooled=True))

    def stages(self) -> list[Stage]:
        f = self.config.relation_fraction
        if f == 0:
            return [Stage("classifier", 1.0)]
        return [Stage("relation", f, exclusive=self.config.embedding_only), Stage("classifier", 1.0 - f)]

    def term_weights(self) -> dict[str, float]:
        return {"relation": self.config.relation_weight, "local_kd": self.config.classifier_weight}

    def forward(self, batch, student, teacher, step):
        lab = batch.labelled
        if step.stage == "relation":
            s = F.normalize(student.pooled[lab], p=2, dim=1)
            t = F.normalize(teacher.pooled[lab].float(), p=2, dim=1)
            triplets = semihard_triplets(s.detach(), batch.y[lab], batch.index[lab], self.config.margin)
            return {"relation": triplet_relation_loss(s, t, triplets, self.config.tau1)}
        rows = torch.ones_like(lab) if self.config.unlabelled else lab
        if not rows.any():
            return {"local_kd": zero_like_graph(student.logits)}
        classes = torch.ones(len(self.centres), dtype=torch.bool, device=lab.device)
        if self.config.local and lab.any():
            classes = torch.zeros_like(classes).index_fill_(0, batch.y[lab], True)
        return {"local_kd": local_classifier_kd_loss(student.logits[rows], teacher.pooled[rows], self.centres, classes,
                                                     self.config.tau2)}
