"""Losses on logits: what the student's class scores should match in the teacher's.

Owns Hinton KD (Hinton, Vinyals & Dean, arXiv:1503.02531) and its class-mapped form, logit
standardization (Sun et al., arXiv:2403.01427), Decoupled KD (Zhao et al., arXiv:2203.08679),
DIST's correlation losses (Huang et al., arXiv:2205.10536), hard pseudo-labels (arXiv:1503.02531)
and logit regression (Ba & Caruana, arXiv:1312.6184); and ``_soft_target_kl``, the batch-mean KL to
soft targets that :mod:`kdzoo.losses.relational` (REFILLED's second stage) shares. Public through
:mod:`kdzoo.losses`; the conventions are that package's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _soft_target_kl(student_logits: Tensor, target_probs: Tensor, temperature: float) -> Tensor:
    """``KL(target || softmax(student / T))`` summed over classes, averaged over the batch (``batchmean``)."""
    log_p_s = F.log_softmax(student_logits / temperature, dim=-1)
    return F.kl_div(log_p_s, target_probs, reduction="batchmean")


def standardize_logits(logits: Tensor, eps: float = 1e-7) -> Tensor:
    """Logit standardization: each row z-scored, ``(z - mean(z)) / (std(z) + eps)``.

    Sun et al., "Logit Standardization in Knowledge Distillation", CVPR 2024, arXiv:2403.01427
    (the authors' ``normalize``: ``torch.std``, i.e. with Bessel's correction, and ``eps = 1e-7``).
    Dividing the result by the base temperature ``T`` gives the paper's ``Z(z; tau)``.

    Args:
        logits: ``[B, K]``.
        eps: added to the standard deviation.

    Returns:
        ``[B, K]``, each row of zero mean and unit (unbiased) standard deviation.
    """
    return (logits - logits.mean(-1, keepdim=True)) / (logits.std(-1, keepdim=True) + eps)


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float, standardize: bool = False) -> Tensor:
    """Hinton KD: ``T^2 * KL(softmax(t/T) || softmax(s/T))``, averaged over the batch.

    Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", arXiv:1503.02531; the
    definition of torchdistill's ``KDLoss`` (``batchmean`` times ``T^2``, which keeps gradient
    magnitudes comparable across temperatures).

    Args:
        student_logits: ``[B, K]``.
        teacher_logits: ``[B, K]`` (detached here).
        temperature: softening temperature ``T > 0`` (the base temperature with ``standardize``).
        standardize: z-score both models' logits first (:func:`standardize_logits`, arXiv:2403.01427).

    Returns:
        A scalar.
    """
    if standardize:
        student_logits, teacher_logits = standardize_logits(student_logits), standardize_logits(teacher_logits)
    p_t = F.softmax(teacher_logits.detach() / temperature, dim=-1)
    return _soft_target_kl(student_logits, p_t, temperature) * temperature ** 2


def class_mapped_probs(teacher_logits: Tensor, class_map: Tensor, temperature: float) -> Tensor:
    """Teacher probabilities at temperature ``T`` summed into the student's (coarser) classes.

    Args:
        teacher_logits: ``[B, K_t]`` (detached here).
        class_map: ``[K_t, K_s]`` 0/1 matrix, ``1`` where teacher class ``i`` maps to student class ``j``.
        temperature: ``T > 0``.

    Returns:
        ``[B, K_s]``, rows summing to 1 (renormalised over the mapped teacher classes).
    """
    q = F.softmax(teacher_logits.detach().float() / temperature, dim=-1) @ class_map
    return q / q.sum(-1, keepdim=True).clamp_min(1e-12)


def class_mapped_kd_loss(student_logits: Tensor, teacher_logits: Tensor, class_map: Tensor,
                         temperature: float) -> Tensor:
    """Hinton KD (arXiv:1503.02531) through a class map: ``T^2 * KL(q || softmax(s/T))``, batch mean.

    Args:
        student_logits: ``[B, K_s]``.
        teacher_logits: ``[B, K_t]`` (detached here).
        class_map: ``[K_t, K_s]`` 0/1 matrix (see :func:`class_mapped_probs`).
        temperature: ``T > 0``.
    """
    q = class_mapped_probs(teacher_logits, class_map, temperature)
    return _soft_target_kl(student_logits, q, temperature) * temperature ** 2


def dkd_terms(student_logits: Tensor, teacher_logits: Tensor, target: Tensor,
              temperature: float, standardize: bool = False) -> tuple[Tensor, Tensor]:
    """Decoupled KD's two terms, TCKD and NCKD, each ``T^2``-scaled and averaged over the batch.

    Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022, arXiv:2203.08679. TCKD is the KL of
    the binary (target vs. all other classes) distributions; NCKD the KL of the distributions over
    the non-target classes (the target logit pushed down by 1000 after scaling, as in the authors' code).

    Args:
        student_logits: ``[B, K]``.
        teacher_logits: ``[B, K]`` (detached here).
        target: ``[B]`` class ids.
        temperature: ``T > 0`` (the base temperature with ``standardize``).
        standardize: z-score both models' logits first (:func:`standardize_logits`, arXiv:2403.01427).

    Returns:
        ``(tckd, nckd)``, two scalars.
    """
    if standardize:
        student_logits, teacher_logits = standardize_logits(student_logits), standardize_logits(teacher_logits)
    t = temperature
    teacher_logits = teacher_logits.detach()
    gt = F.one_hot(target, student_logits.shape[-1]).bool()
    p_s = F.softmax(student_logits / t, dim=-1)
    p_t = F.softmax(teacher_logits / t, dim=-1)
    b_s = torch.stack([(p_s * gt).sum(-1), (p_s * ~gt).sum(-1)], dim=-1)
    b_t = torch.stack([(p_t * gt).sum(-1), (p_t * ~gt).sum(-1)], dim=-1)
    tckd = F.kl_div(torch.log(b_s.clamp_min(1e-12)), b_t, reduction="batchmean") * t ** 2
    log_q_s = F.log_softmax(student_logits / t - 1000.0 * gt, dim=-1)
    q_t = F.softmax(teacher_logits / t - 1000.0 * gt, dim=-1)
    nckd = F.kl_div(log_q_s, q_t, reduction="batchmean") * t ** 2
    return tckd, nckd


def dkd_loss(student_logits: Tensor, teacher_logits: Tensor, target: Tensor, temperature: float = 4.0,
             alpha: float = 1.0, beta: float = 8.0, standardize: bool = False) -> Tensor:
    """Decoupled KD, ``alpha * TCKD + beta * NCKD`` (arXiv:2203.08679; the paper's warm-up is the caller's).

    Args:
        student_logits: ``[B, K]``.
        teacher_logits: ``[B, K]`` (detached here).
        target: ``[B]`` class ids.
        temperature: ``T > 0``.
        alpha: TCKD weight.
        beta: NCKD weight.
        standardize: z-score both models' logits first (arXiv:2403.01427).
    """
    tckd, nckd = dkd_terms(student_logits, teacher_logits, target, temperature, standardize)
    return alpha * tckd + beta * nckd


def pearson_correlation(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Row-wise Pearson correlation: the cosine of the mean-centred rows (DIST's definition).

    Args:
        a: ``[N, M]``.
        b: ``[N, M]``.
        eps: added to the product of the norms (the authors' ``1e-8``).

    Returns:
        ``[N]``, the correlation of ``a[i]`` with ``b[i]``.
    """
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def dist_terms(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> tuple[Tensor, Tensor]:
    """DIST's two relation losses, each ``T^2``-scaled (Huang et al., NeurIPS 2022, arXiv:2205.10536).

    With ``Y = softmax(z / T)`` row-wise, the inter-class loss is ``1 - mean_i rho(Y_s[i, :], Y_t[i, :])``
    (each sample's class distribution, correlated across classes) and the intra-class loss
    ``1 - mean_k rho(Y_s[:, k], Y_t[:, k])`` (each class's scores, correlated across the batch);
    ``rho`` is :func:`pearson_correlation`. As the authors' ``DIST`` module (hunto/DIST_KD).

    Args:
        student_logits: ``[B, K]``.
        teacher_logits: ``[B, K]`` (detached here).
        temperature: ``T > 0``.

    Returns:
        ``(inter, intra)``, two scalars.
    """
    t = temperature
    y_s = F.softmax(student_logits / t, dim=1)
    y_t = F.softmax(teacher_logits.detach() / t, dim=1)
    inter = (1.0 - pearson_correlation(y_s, y_t).mean()) * t ** 2
    intra = (1.0 - pearson_correlation(y_s.t(), y_t.t()).mean()) * t ** 2
    return inter, intra


def dist_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0, beta: float = 1.0,
              gamma: float = 1.0) -> Tensor:
    """DIST, ``beta * inter + gamma * intra`` (arXiv:2205.10536); see :func:`dist_terms`.

    Args:
        student_logits: ``[B, K]``.
        teacher_logits: ``[B, K]`` (detached here).
        temperature: ``T > 0``.
        beta: inter-class weight.
        gamma: intra-class weight.
    """
    inter, intra = dist_terms(student_logits, teacher_logits, temperature)
    return beta * inter + gamma * intra


def pseudo_label_loss(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Cross-entropy to the teacher's argmax (Hinton et al.'s hard targets, arXiv:1503.02531), batch mean.

    Args:
        student_logits: ``[B, K]``.
        teacher_logits: ``[B, K]`` (only their argmax is used).
    """
    return F.cross_entropy(student_logits, teacher_logits.argmax(-1))


def logit_mse_loss(student_outputs: Tensor, teacher_outputs: Tensor) -> Tensor:
    """Mean squared error to the teacher's logits or regression outputs (Ba & Caruana, arXiv:1312.6184).

    Args:
        student_outputs: ``[B, K]``.
        teacher_outputs: ``[B, K]`` (detached here).

    Returns:
        The mean over batch and outputs.
    """
    return F.mse_loss(student_outputs, teacher_outputs.detach())


__all__ = [
    "class_mapped_kd_loss", "class_mapped_probs", "dist_loss", "dist_terms", "dkd_loss", "dkd_terms", "kd_loss",
    "logit_mse_loss", "pearson_correlation", "pseudo_label_loss", "standardize_logits",
]
