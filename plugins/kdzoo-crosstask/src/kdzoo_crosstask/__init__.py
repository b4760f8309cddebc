"""kdzoo-crosstask: distillation from a teacher trained for another task or label space.

Registered through the ``kdzoo`` entry point. Strategies (family ``cross-task``):
``class-mapped-kd`` (logit KD through a validated class map), ``rkd`` and ``sp`` (relational,
label-space-agnostic), ``projected-feature`` (learned projector, incl. the inverted projection of
Auty et al. 2024) and ``refilled`` (relationship matching, then the teacher's local classifier).
:mod:`kdzoo_crosstask.probe` measures whether a teacher's embedding transfers at all.
Task definitions (``mnist5k:parity``, ``mnist5k:digits[5-9]``, ...) live in :mod:`kdzoo.tasks`.
"""

from __future__ import annotations

import kdzoo

from .class_mapped_kd import ClassMappedKD
from .projected import ProjectedFeature
from .refilled import REFILLED
from .rkd import RKD
from .sp import SP

STRATEGIES = (ClassMappedKD, RKD, SP, ProjectedFeature, REFILLED)


@kdzoo.hookimpl
def register_strategies(register):
    for cls in STRATEGIES:
        register(cls)
