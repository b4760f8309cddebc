"""Data-free losses: the terms that train a generator of synthetic images against the frozen teacher.

Owns DAFL's one-hot, activation and information-entropy losses (Chen et al., arXiv:1904.01186),
DFAD's L1 logit discrepancy (Fang et al., arXiv:1912.11006) and DeepInversion's BN-statistic, total
variation and L2 image priors with Adaptive DeepInversion's competition term (Yin et al.,
arXiv:1912.08795). Here the teacher's outputs stay attached where the generator's step
back-propagates through the frozen teacher into the images, as each docstring says. Public through
:mod:`kdzoo.losses`; the conventions are that package's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .logit import pseudo_label_loss


def one_hot_loss(logits: Tensor) -> Tensor:
    """DAFL's one-hot loss ``CE(y_T, argmax y_T)``, batch mean (Chen et al., arXiv:1904.01186).

    Args:
        logits: the teacher's ``[B, K]`` on generated images (gradient flows to the images).
    """
    return pseudo_label_loss(logits, logits.detach())


def activation_loss(features: Tensor) -> Tensor:
    """DAFL's activation loss ``-mean |f_T|`` over every element (arXiv:1904.01186; the code's mean, not L1 sum).

    Args:
        features: the teacher's ``[B, D]`` pre-logit features on generated images.
    """
    return -features.abs().mean()


def information_entropy_loss(logits: Tensor) -> Tensor:
    """DAFL's information-entropy loss ``sum_k p_k log10 p_k``, ``p`` the batch-mean softmax (arXiv:1904.01186).

    Minimal when the generated batch covers the classes evenly.

    Args:
        logits: the teacher's ``[B, K]`` on generated images.
    """
    p = F.softmax(logits, dim=-1).mean(0)
    return (p * torch.log10(p)).sum()


def l1_discrepancy(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """DFAD's logit discrepancy ``mean |s - t|`` over every element (Fang et al., arXiv:1912.11006).

    Args:
        student_logits: ``[B, K]``.
        teacher_logits: ``[B, K]``, not detached: the generator's step maximises this through the teacher.
    """
    return F.l1_loss(student_logits, teacher_logits)


def bn_statistic_loss(x: Tensor, running_mean: Tensor, running_var: Tensor) -> Tensor:
    """DeepInversion's feature-statistics term of one BN layer (Yin et al., arXiv:1912.08795).

    ``||mean(x) - running_mean||_2 + ||var(x) - running_var||_2`` over the channels of the layer's
    input, with the per-channel batch mean and biased variance (L2 norms, not squared).

    Args:
        x: a BN layer's input ``[B, C, *]`` (``[B, C]`` for BatchNorm1d).
        running_mean: ``[C]``.
        running_var: ``[C]``.
    """
    flat = x.transpose(0, 1).reshape(x.shape[1], -1)  # [C, B * spatial]
    mean = flat.mean(1)
    var = flat.var(1, unbiased=False)
    return (running_mean.to(var.dtype) - mean).norm(2) + (running_var.to(var.dtype) - var).norm(2)


def tv_loss(x: Tensor) -> Tensor:
    """DeepInversion's L2 total variation over four neighbour directions (arXiv:1912.08795).

    Args:
        x: images ``[B, C, H, W]``.

    Returns:
        The sum of the L2 norms of the horizontal, vertical and two diagonal differences.
    """
    d1 = x[:, :, :, :-1] - x[:, :, :, 1:]
    d2 = x[:, :, :-1, :] - x[:, :, 1:, :]
    d3 = x[:, :, 1:, :-1] - x[:, :, :-1, 1:]
    d4 = x[:, :, :-1, :-1] - x[:, :, 1:, 1:]
    return d1.norm() + d2.norm() + d3.norm() + d4.norm()


def image_l2_loss(x: Tensor) -> Tensor:
    """DeepInversion's L2 image prior ``||x||_2`` over the whole batch ``[B, ...]`` (arXiv:1912.08795)."""
    return x.norm()


def adi_competition_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 3.0) -> Tensor:
    """Adaptive DeepInversion's competition term ``1 - clamp(JS(P, Q), 0, 1)`` (arXiv:1912.08795, authors' code).

    ``P = softmax(s / T)``, ``Q = softmax(t / T)``, ``M = (P + Q) / 2``, each clamped to
    ``[0.01, 0.99]``; ``JS = (KL(M || P) + KL(M || Q)) / 2``, each KL ``batchmean``.

    Args:
        student_logits: ``[B, K]``.
        teacher_logits: ``[B, K]``, not detached (the images get its gradient).
        temperature: ``T`` (3 in the code).
    """
    p = F.softmax(student_logits / temperature, dim=1)
    q = F.softmax(teacher_logits / temperature, dim=1)
    m = (0.5 * (p + q)).clamp(0.01, 0.99)
    p, q = p.clamp(0.01, 0.99), q.clamp(0.01, 0.99)
    js = 0.5 * F.kl_div(p.log(), m, reduction="batchmean") + 0.5 * F.kl_div(q.log(), m, reduction="batchmean")
    return 1.0 - js.clamp(0.0, 1.0)


__all__ = [
    "activation_loss", "adi_competition_loss", "bn_statistic_loss", "image_l2_loss", "information_entropy_loss",
    "l1_discrepancy", "one_hot_loss", "tv_loss",
]
