"""Losses on relations within a batch: distances, angles, similarities and contrasts between samples.

Owns RKD's distance and angle losses (Park et al., arXiv:1904.05068), similarity-preserving KD (Tung &
Mori, arXiv:1907.09682), CRD's memory-bank scores and NCE loss (Tian, Krishnan & Isola,
arXiv:1910.10699) and REFILLED's two stages (Ye et al., arXiv:2205.01915: the triplet miner, the
triplet relation loss, and the local class-centre classifier KD, which uses
:mod:`kdzoo.losses.logit`'s soft-target KL). Public through :mod:`kdzoo.losses`; the conventions are
that package's.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .logit import _soft_target_kl


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


def _relation_smooth_l1(student: Tensor, teacher: Tensor, relation: Callable[[Tensor], Tensor]) -> Tensor:
    """``smooth_l1(relation(student), relation(teacher))``, the teacher's side without gradient."""
    with torch.no_grad():
        t = relation(teacher.float())
    return F.smooth_l1_loss(relation(student), t)


def rkd_distance_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """RKD distance loss (Park et al., arXiv:1904.05068; the authors' ``RkdDistance``).

    ``smooth_l1`` between the two ``[B, B]`` distance matrices, each divided by the mean of its
    non-zero distances.

    Args:
        student: ``[B, Ds]`` embeddings.
        teacher: ``[B, Dt]`` embeddings (no gradient).
    """
    return _relation_smooth_l1(student, teacher, _normalised_distances)


def _angles(e: Tensor) -> Tensor:
    diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)  # [i, j] = e_j - e_i
    return torch.bmm(diff, diff.transpose(1, 2)).reshape(-1)


def rkd_angle_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """RKD angle loss (arXiv:1904.05068): ``smooth_l1`` over the ``B^3`` cosines of the angles at each sample.

    Args:
        student: ``[B, Ds]`` embeddings.
        teacher: ``[B, Dt]`` embeddings (no gradient).
    """
    return _relation_smooth_l1(student, teacher, _angles)


def similarity_matrix(f: Tensor) -> Tensor:
    """Row-normalised Gram matrix ``[B, B]`` of ``f [B, ...]`` (flattened per sample)."""
    f = f.reshape(f.shape[0], -1)
    return F.normalize(f @ f.t(), p=2, dim=1)


def sp_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Similarity-preserving KD: ``||G_T - G_S||_F^2 / B^2`` (Tung & Mori, arXiv:1907.09682; RepDistiller's SP).

    Args:
        student: ``[B, ...]`` activations (flattened per sample).
        teacher: ``[B, ...]`` activations (detached here).
    """
    b = student.shape[0]
    diff = similarity_matrix(teacher.detach().float()) - similarity_matrix(student)
    return diff.pow(2).sum() / (b * b)


def contrast_scores(embedding: Tensor, rows: Tensor, temperature: float) -> Tensor:
    """CRD's unnormalised scores ``exp(<m_j, v> / T)`` of one embedding against memory rows.

    Tian, Krishnan & Isola, "Contrastive Representation Distillation", ICLR 2020, arXiv:1910.10699
    (RepDistiller's ``ContrastMemory``; divide by the constant ``Z`` to get ``P(j | v)``).

    Args:
        embedding: ``[B, D]`` L2-normalised embeddings ``v``.
        rows: ``[B, K + 1, D]`` memory rows per sample, the positive first (detached here).
        temperature: ``T`` (0.07 in the paper).

    Returns:
        ``[B, K + 1]``.
    """
    return torch.exp(torch.bmm(rows.detach(), embedding.unsqueeze(2)).squeeze(2) / temperature)


def nce_contrast_loss(probs: Tensor, n_data: int, eps: float = 1e-7) -> Tensor:
    """CRD's NCE loss (arXiv:1910.10699, Eqs. 18-19; RepDistiller's ``ContrastLoss``).

    With ``K`` negatives drawn uniformly from ``N`` data (noise ``P_n = 1 / N``) and
    ``P`` the normalised scores, ``h = P / (P + K / N)``; the loss is
    ``-(sum_b log h(positive_b) + sum_{b,k} log(1 - h(negative_bk))) / B``, with ``1 - h`` written
    ``(K / N) / (P + K / N + eps)`` as the authors' code.

    Args:
        probs: ``[B, K + 1]`` normalised scores ``P(j | v)``, column 0 the positive.
        n_data: ``N``, the number of memory rows (the training set's size).
        eps: the authors' ``1e-7``.

    Returns:
        A scalar.
    """
    m_pn = (probs.shape[1] - 1) / float(n_data)
    pos, neg = probs[:, 0], probs[:, 1:]
    log_d1 = torch.log(pos / (pos + m_pn + eps))
    log_d0 = torch.log(m_pn / (neg + m_pn + eps))
    return -(log_d1.sum() + log_d0.sum()) / probs.shape[0]


def semihard_triplets(emb: Tensor, labels: Tensor, ids: Tensor, margin: float) -> tuple[Tensor, Tensor, Tensor]:
    """Indices ``(a, p, n)`` of every semi-hard triplet, ``0 < d_an - d_ap <= margin`` (REFILLED's miner).

    Args:
        emb: ``[N, D]`` L2-normalised embeddings.
        labels: ``[N]`` class ids.
        ids: ``[N]`` sample ids; a positive must be another sample than the anchor.
        margin: the miner's margin.
    """
    with torch.no_grad():
        d = torch.cdist(emb, emb)
        same = labels.unsqueeze(0) == labels.unsqueeze(1)
        pos = same & (ids.unsqueeze(0) != ids.unsqueeze(1))
        gap = d.unsqueeze(1) - d.unsqueeze(2)  # [a, p, n] = d[a, n] - d[a, p]
        mask = pos.unsqueeze(2) & (~same).unsqueeze(1) & (gap > 0) & (gap <= margin)
        return mask.nonzero(as_tuple=True)


def triplet_relation_loss(student: Tensor, teacher: Tensor, triplets: tuple[Tensor, Tensor, Tensor],
                          tau: float) -> Tensor:
    """REFILLED stage 1 (Ye et al., arXiv:2205.01915): the teacher's triplet comparisons as soft targets.

    ``P = sigmoid((d_an - d_ap) / tau)`` per triplet on each model's embedding; the loss is
    ``sum KL([P_T, 1 - P_T] || [P_S, 1 - P_S]) / (2 n)`` (the authors' ``KLDivLoss(batchmean)``
    over the stacked ``[2n, 1]`` column).

    Args:
        student: ``[N, Ds]`` L2-normalised student embeddings.
        teacher: ``[N, Dt]`` L2-normalised teacher embeddings (no gradient).
        triplets: ``(a, p, n)`` index tensors of one length ``n``.
        tau: temperature.

    Returns:
        A scalar; zero, still on the student's graph, when there is no triplet.
    """
    a, p, n = triplets
    if len(a) == 0:
        return student.sum() * 0.0

    def prob(e: Tensor) -> Tensor:
        return torch.sigmoid(((e[a] - e[n]).norm(dim=1) - (e[a] - e[p]).norm(dim=1)) / tau)

    with torch.no_grad():
        pt = prob(teacher.float())
    ps = prob(student)
    kl = pt * (pt.clamp_min(1e-12).log() - ps.clamp_min(1e-12).log())
    kl = kl + (1 - pt) * ((1 - pt).clamp_min(1e-12).log() - (1 - ps).clamp_min(1e-12).log())
    return kl.sum() / (2 * len(a))


def local_classifier_kd_loss(student_logits: Tensor, teacher_emb: Tensor, centres: Tensor, classes: Tensor,
                             tau: float) -> Tensor:
    """REFILLED stage 2 (arXiv:2205.01915): KL of the teacher's class-centre classifier to the student.

    ``KL(softmax(f_T c_k^T / tau) || softmax(s_k / tau))`` over the classes in ``classes``,
    ``batchmean``, without a ``tau^2`` factor (as the authors' code).

    Args:
        student_logits: ``[B, K]``.
        teacher_emb: ``[B, Dt]`` teacher embeddings (detached here; not normalised, as the code).
        centres: ``[K, Dt]`` L2-normalised class centres.
        classes: ``[K]`` bool mask of the classes in the local classifier.
        tau: temperature.
    """
    t = teacher_emb.detach().float() @ centres[classes].t()
    return _soft_target_kl(student_logits[:, classes], F.softmax(t / tau, dim=1), tau)


__all__ = [
    "contrast_scores", "local_classifier_kd_loss", "nce_contrast_loss", "pairwise_distances", "rkd_angle_loss",
    "rkd_distance_loss", "semihard_triplets", "similarity_matrix", "sp_loss", "triplet_relation_loss",
]
