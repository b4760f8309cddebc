"""kdzoo-logit: the logit distillation family, registered through the ``kdzoo`` entry point."""

from __future__ import annotations

from kdzoo.plugin import hookimpl

from .dist import DIST
from .dkd import DKD
from .kd import KD
from .pseudo_label import PseudoLabel
from .regression_kd import RegressionKD

STRATEGIES = (KD, PseudoLabel, DKD, RegressionKD, DIST)


@hookimpl
def register_strategies(register):
    for cls in STRATEGIES:
        register(cls)
