"""kdzoo-feature: the feature / hint transfer family, registered through the ``kdzoo`` entry point.

Strategies (each returns only its feature term; the trainer adds the hard-label term and ``+kd``
composes Hinton KD): ``fitnet`` (hint stage, then KD), ``at`` (attention transfer) and
``pooled-feature`` (pre-logit matching). :func:`kdzoo_feature.probe.teacher_feature_probe` is the
teacher-feature probe, a reference row (not a strategy).
"""

from __future__ import annotations

import kdzoo

from .attention import AttentionTransfer
from .fitnet import FitNet
from .pooled import PooledFeature

STRATEGIES = (FitNet, AttentionTransfer, PooledFeature)


@kdzoo.hookimpl
def register_strategies(register):
    for cls in STRATEGIES:
        register(cls)


__all__ = ["AttentionTransfer", "FitNet", "PooledFeature", "STRATEGIES"]
