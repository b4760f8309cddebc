"""The zoo's distillation losses as plain functions on tensors: one implementation of each.

Every strategy of the in-repo plugins computes its terms with these functions, and they work in
any training loop (plain PyTorch, Lightning, an HF ``Trainer.compute_loss``) without kdzoo's
``Outputs``/``StepInfo``/``RunContext``::

    from kdzoo import losses
    loss = ce + 0.9 * losses.kd_loss(student_logits, teacher_logits, temperature=4.0)

Conventions: a loss returns an unweighted scalar (the caller weights it); "teacher" arguments are
detached where the method never sends gradient to the teacher, and left attached where a
data-free method back-propagates through the frozen teacher into synthetic images (DAFL, DFAD,
DeepInversion), as each docstring says. ``B`` is the batch, ``K`` the classes, ``D`` a feature
width. This module imports torch only.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


# -- logits -----------------------------------------------------------------------------------------
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


# -- features ---------------------------------------------------------------------------------------
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


# -- relations within a batch -------------------------------------------------------------------------
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


# -- data-free --------------------------------------------------------------------------------------
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
    "activation_loss", "adi_competition_loss", "at_loss", "attention_map", "bn_statistic_loss",
    "class_mapped_kd_loss", "class_mapped_probs", "contrast_scores", "dist_loss", "dist_terms", "dkd_loss",
    "dkd_terms", "hcl_loss", "hint_loss", "image_l2_loss", "information_entropy_loss", "kd_loss", "l1_discrepancy",
    "local_classifier_kd_loss", "logit_mse_loss", "nce_contrast_loss", "one_hot_loss", "pairwise_distances",
    "pearson_correlation", "pool_to_common_size", "pooled_feature_loss", "pseudo_label_loss", "rkd_angle_loss",
    "rkd_distance_loss", "semihard_triplets", "similarity_matrix", "sp_loss", "standardize_logits",
    "triplet_relation_loss", "tv_loss",
]
