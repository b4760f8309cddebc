"""Losses on intermediate features: maps and pooled vectors of one student layer against the teacher's.

Owns attention transfer (Zagoruyko & Komodakis, arXiv:1612.03928), FitNets' hint loss (Romero et
al., arXiv:1412.6550), pooled-feature distances with a projector on either side (arXiv:1412.6550;
Auty et al., arXiv:2403.14494) and ReviewKD's hierarchical context loss (Chen et al.,
arXiv:2104.09044), with the pooling helper they share. Public through :mod:`kdzoo.losses`; the
conventions are that package's.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def pool_to_common_size(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Average-pool two maps ``[B, C, H, W]`` (channels may differ) to their smaller resolution."""
    size = (min(a.shape[-2], b.shape[-2]), min(a.shape[-1], b.shape[-1]))
    if tuple(a.shape[-2:]) != size:
        a = F.adaptive_avg_pool2d(a, size)
    if tuple(b.shape[-2:]) != size:
        b = F.adaptive_avg_pool2d(b, size)
    return a, b


def attention_map(feature: Tensor, p: float = 2.0) -> Tensor:
    """Activation-based spatial attention (Zagoruyko & Komodakis, arXiv:1612.03928).

    ``normalize(mean_c |A|^p)``: the channel mean equals the paper's channel sum up to a factor the
    L2 normalisation removes.

    Args:
        feature: ``[B, C, H, W]``.
        p: exponent of ``|A|^p`` (2 in the paper).

    Returns:
        ``[B, H*W]``, each row of unit L2 norm.
    """
    return F.normalize(feature.abs().pow(p).mean(1).flatten(1), dim=1)


def at_loss(student: Tensor, teacher: Tensor, p: float = 2.0) -> Tensor:
    """Attention transfer of one layer pair: ``mean((Q_s - Q_t)^2)`` (arXiv:1612.03928, official ``at_loss``).

    The paper weights the sum over pairs by ``beta / 2`` (``beta = 1000``); that is the caller's.

    Args:
        student: ``[B, Cs, Hs, Ws]``.
        teacher: ``[B, Ct, Ht, Wt]`` (detached here); channels may differ, and different
            resolutions are average-pooled to the smaller one.
        p: exponent of ``|A|^p``.
    """
    student, teacher = pool_to_common_size(student, teacher.detach())
    return (attention_map(student, p) - attention_map(teacher, p)).pow(2).mean()


def hint_loss(student: Tensor, teacher: Tensor, projector: nn.Module | None = None) -> Tensor:
    """FitNets' hint loss: ``mean((r(v_g) - u_h)^2)`` (Romero et al., arXiv:1412.6550).

    The paper's ``1/2 ||u_h - r(v_g)||^2`` taken as a mean, as RepDistiller and timm do.

    Args:
        student: the guided feature ``[B, Cs, H, W]`` or ``[B, Ds]``.
        teacher: the hint ``[B, Ct, H', W']`` or ``[B, Dt]`` (detached here), same rank as the
            projector's output.
        projector: the regressor ``r`` (a 1x1 convolution between maps, a linear layer between
            vectors), trained with the student; ``None`` when widths already match.

    Returns:
        A scalar; maps are average-pooled to the smaller resolution after the projector.
    """
    regressed = projector(student) if projector is not None else student
    hint = teacher.detach()
    if regressed.dim() == 4:
        regressed, hint = pool_to_common_size(regressed, hint)
    return F.mse_loss(regressed, hint)


def pooled_feature_loss(student: Tensor, teacher: Tensor, kind: str = "mse", projector: nn.Module | None = None,
                        project: str = "student") -> Tensor:
    """Distance between pooled (pre-logit) features, through an optional learned projector.

    ``mse`` is timm's ``FeatureDistillationTask`` (hint regression at the pre-logit layer, Romero et
    al., arXiv:1412.6550); ``project="teacher"`` is the inverted projection of Auty et al.,
    "Learning to Project for Cross-Task Knowledge Distillation", arXiv:2403.14494.

    Args:
        student: ``[B, Ds]``.
        teacher: ``[B, Dt]`` (detached here).
        kind: ``mse`` (mean over batch and features) or ``cosine`` (batch mean of ``1 - cos``).
        projector: ``Ds -> Dt`` (``project="student"``) or ``Dt -> Ds`` (``project="teacher"``).
        project: which side the projector maps.
    """
    teacher = teacher.detach()
    if projector is not None:
        if project == "teacher":
            teacher = projector(teacher)
        else:
            student = projector(student)
    if kind == "cosine":
        return (1.0 - F.cosine_similarity(student, teacher, dim=1)).mean()
    return F.mse_loss(student, teacher)


def hcl_loss(student: list[Tensor], teacher: list[Tensor], levels: tuple[int, ...] = (4, 2, 1)) -> Tensor:
    """ReviewKD's hierarchical context loss (Chen et al., "Distilling Knowledge via Knowledge Review",
    CVPR 2021, arXiv:2104.09044; the authors' ``hcl``, as in mdistiller).

    Per pair, the MSE of the full maps (weight 1) plus the MSE of both maps average-pooled to
    ``l x l`` for each ``l`` in ``levels`` smaller than the map's height, with weights halving
    (1/2, 1/4, ...), divided by the sum of the weights used; the pairs' losses are summed.

    Args:
        student: maps ``[B, C, H, W]`` (the fused student features, already at the teacher's size).
        teacher: maps of the same shapes (detached here).
        levels: pooled sizes (4, 2, 1 in the paper).

    Returns:
        A scalar.
    """
    total = student[0].new_zeros(())
    for fs, ft in zip(student, teacher):
        ft = ft.detach()
        loss, weight, weights = F.mse_loss(fs, ft), 1.0, 1.0
        for size in levels:
            if size >= fs.shape[2]:
                continue
            weight /= 2.0
            loss = loss + F.mse_loss(F.adaptive_avg_pool2d(fs, (size, size)),
                                     F.adaptive_avg_pool2d(ft, (size, size))) * weight
            weights += weight
        total = total + loss / weights
    return total


__all__ = ["at_loss", "attention_map", "hcl_loss", "hint_loss", "pool_to_common_size", "pooled_feature_loss"]
