"""kdzoo-crosstask: distillation from a teacher trained for another task or label space.

Registered through the ``kdzoo`` entry point. Strategies (family ``cross-task``):
``class-mapped-kd`` (logit KD through a validated class map), ``rkd`` and ``sp`` (relational,
label-space-agnostic), ``projected-feature`` (learned projector, incl. the inverted projection of
Auty et al. 2024) and ``refilled`` (relationship matching, then the teacher's local classifier).
:mod:`kdzoo_crosstask.probe` measures whether a teacher's embedding transfers at all (registered as
the ``embedding-probe`` reference row for ``kdzoo bench``).
Task definitions (``mnist5k:parity``, ``mnist5k:digits[5-9]``, ...) live in kdzoo's core (class maps:
``kdzoo.data.read_class_map``).
"""

from __future__ import annotations

from kdzoo.plugin import hookimpl

from .class_mapped_kd import ClassMappedKD
from .projected import ProjectedFeature
from .refilled import REFILLED
from .rkd import RKD
from .sp import SP

STRATEGIES = (ClassMappedKD, RKD, SP, ProjectedFeature, REFILLED)


@hookimpl
def register_strategies(register):
    for cls in STRATEGIES:
        register(cls)


def embedding_probe_row(teacher, bundle, splits) -> dict:
    """Bench reference row: nearest-class-mean accuracy of the teacher's embedding, same labels."""
    from .probe import ncm_probe

    result = ncm_probe(teacher, bundle, splits)
    return {"test_acc": result["test_acc"], "val_acc": result["val_acc"],
            "params": sum(p.numel() for p in teacher.net.parameters())}


@hookimpl
def register_references(register):
    register("embedding-probe", embedding_probe_row,
             description="nearest-class-mean (cosine) accuracy of the frozen teacher's embedding, student's labels")
