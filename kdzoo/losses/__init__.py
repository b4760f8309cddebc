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
width. The package imports torch only.

One module per kind, each re-exported here (import from :mod:`kdzoo.losses`, not from them; their
split is free to change): :mod:`~kdzoo.losses.logit` (KD, DKD, DIST, logit standardization, hard
labels, logit regression), :mod:`~kdzoo.losses.feature` (attention, hints, pooled features,
ReviewKD), :mod:`~kdzoo.losses.relational` (RKD, SP, CRD, REFILLED) and
:mod:`~kdzoo.losses.datafree` (DAFL, DFAD, DeepInversion).
"""

from __future__ import annotations

from .logit import (
    class_mapped_kd_loss, class_mapped_probs, dist_loss, dist_terms, dkd_loss, dkd_terms, kd_loss, logit_mse_loss,
    pearson_correlation, pseudo_label_loss, standardize_logits,
)
from .feature import at_loss, attention_map, hcl_loss, hint_loss, pool_to_common_size, pooled_feature_loss
from .relational import (
    contrast_scores, local_classifier_kd_loss, nce_contrast_loss, pairwise_distances, rkd_angle_loss, rkd_distance_loss,
    semihard_triplets, similarity_matrix, sp_loss, triplet_relation_loss,
)
from .datafree import (
    activation_loss, adi_competition_loss, bn_statistic_loss, image_l2_loss, information_entropy_loss, l1_discrepancy,
    one_hot_loss, tv_loss,
)

__all__ = [
    "activation_loss", "adi_competition_loss", "at_loss", "attention_map", "bn_statistic_loss",
    "class_mapped_kd_loss", "class_mapped_probs", "contrast_scores", "dist_loss", "dist_terms", "dkd_loss",
    "dkd_terms", "hcl_loss", "hint_loss", "image_l2_loss", "information_entropy_loss", "kd_loss", "l1_discrepancy",
    "local_classifier_kd_loss", "logit_mse_loss", "nce_contrast_loss", "one_hot_loss", "pairwise_distances",
    "pearson_correlation", "pool_to_common_size", "pooled_feature_loss", "pseudo_label_loss", "rkd_angle_loss",
    "rkd_distance_loss", "semihard_triplets", "similarity_matrix", "sp_loss", "standardize_logits",
    "triplet_relation_loss", "tv_loss",
]
