"""kdzoo-feature: the feature / hint transfer family, registered through the ``kdzoo`` entry point.

Strategies (each returns only its feature term; the trainer adds the hard-label term and ``+kd``
composes Hinton KD): ``fitnet`` (hint stage, then KD), ``at`` (attention transfer) and
``pooled-feature`` (pre-logit matching), ``crd`` (contrastive representation distillation with
memory banks over dataset indices), ``reviewkd`` (knowledge review: ABF fusion across stages and
the hierarchical context loss). The teacher-feature probe
(:func:`kdzoo_feature.probe.teacher_feature_probe`) is a reference row, not a strategy: registered as
``teacher-feature-probe`` for ``kdzoo bench`` (``references:`` in a suite task).
"""

from __future__ import annotations

from kdzoo.plugin import hookimpl

from .attention import AttentionTransfer
from .crd import CRD
from .fitnet import FitNet
from .pooled import PooledFeature
from .reviewkd import ReviewKD

STRATEGIES = (FitNet, AttentionTransfer, PooledFeature, CRD, ReviewKD)


@hookimpl
def register_strategies(register):
    for cls in STRATEGIES:
        register(cls)


def teacher_feature_probe_row(teacher, bundle, splits) -> dict:
    """Bench reference row: logistic regression on the teacher's pooled features, same labels."""
    from .probe import teacher_feature_probe

    probe = teacher_feature_probe(teacher, bundle, splits)["probe"]
    return {k: probe[k] for k in ("test_acc", "val_acc", "params", "ms_per_image", "C")}


@hookimpl
def register_references(register):
    register("teacher-feature-probe", teacher_feature_probe_row,
             description="logistic regression on the frozen teacher's pooled features, with the student's labels")


__all__ = ["AttentionTransfer", "CRD", "FitNet", "PooledFeature", "ReviewKD", "STRATEGIES", "teacher_feature_probe_row"]
