"""Class-mapped KD — Hinton KD (Hinton, Vinyals & Dean, arXiv:1503.02531) through a class map.

For a student whose labels are a function of the teacher's (digit -> parity, digit -> mod 3,
digits -> a smaller set of letters), the teacher's tempered probabilities are summed through the
map and distilled::

    p_t = softmax(t / T)                      [B, K_t]
    q   = p_t M / (p_t M) 1                   [B, K_s]   M[i, j] = 1 iff map(teacher class i) = j
    L   = T^2 * KL(q || softmax(s / T))       averaged over the batch

Teacher classes the map leaves out are dropped and ``q`` is renormalised over the mapped ones. The
map comes from ``params.map`` / ``params.map_file`` (teacher class -> student class, validated:
every student class reachable, no unknown teacher or student class), else from the student's task
definition when the teacher knows its base classes (teacher on ``mnist5k``, student on
``mnist5k:mod3``), else identity when both share one label space. The loss is
:func:`kdzoo.losses.class_mapped_kd_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from kdzoo.data import read_class_map, validate_class_map
from kdzoo.plugin import ConfigError, RunContext, Strategy, alpha_blend, param
from kdzoo.losses import class_mapped_kd_loss


def class_matrix(mapping: dict[str, str | None], teacher_classes: list[str], student_classes: list[str]) -> Tensor:
    """``M [K_t, K_s]`` with ``M[i, j] = 1`` iff teacher class ``i`` maps to student class ``j``."""
    m = torch.zeros(len(teacher_classes), len(student_classes))
    for i, c in enumerate(teacher_classes):
        target = mapping.get(c)
        if target is not None:
            m[i, student_classes.index(target)] = 1.0
    return m


@dataclass
class ClassMappedKDConfig:
    """ClassMappedKD parameters (each field: default, bounds, help)."""

    temperature: float = param(4.0, gt=0, help="softening temperature T.")
    alpha: float = param(
        0.9, ge=0, le=1, help="weight of the distillation term; the hard-label term gets ``1 - alpha``.")
    map: dict[str, Any] = param(
        default_factory=dict, help="teacher class -> student class (``null`` drops a teacher class); wins over the "
                             "data's task map.")
    map_file: str | None = param(
        None, help="a class-map file (YAML/JSON, as for ``classmap=FILE`` tasks), teacher -> student classes.")

    def __post_init__(self) -> None:
        if self.map and self.map_file:
            raise ConfigError("strategy.class-mapped-kd: give map or map_file, not both")


def resolve_map(config: ClassMappedKDConfig, teacher_classes: list[str], student_classes: list[str],
                bundle: Any) -> dict[str, str | None]:
    """The validated teacher -> student class map (see the module docstring for the order of sources)."""
    where = "strategy.class-mapped-kd map"
    if config.map_file:
        mapping, declared = read_class_map(config.map_file, "strategy.class-mapped-kd map_file")
        if declared is not None and declared != list(student_classes):
            raise ConfigError(f"{where}: file declares classes {declared}, the data has {list(student_classes)}")
    elif config.map:
        mapping = {str(k): None if v is None else str(v) for k, v in config.map.items()}
    elif bundle is not None and bundle.class_map and list(bundle.base_classes or []) == list(teacher_classes):
        mapping = dict(bundle.class_map)  # the student's task definition, over the teacher's classes
    elif list(teacher_classes) == list(student_classes):
        mapping = {c: c for c in teacher_classes}
    else:
        raise ConfigError(
            f"strategy 'class-mapped-kd' needs a class map from the teacher's {len(teacher_classes)} classes "
            f"{list(teacher_classes)[:6]} to the data's {len(student_classes)} {list(student_classes)[:6]}: set "
            f"params.map or params.map_file, or train the teacher on the data's base dataset (teacher_data)")
    validate_class_map(mapping, list(teacher_classes), list(student_classes), where)
    return mapping


class ClassMappedKD(Strategy):
    """Hinton KD through a class map: teacher probabilities summed into the student's coarser classes."""

    name = "class-mapped-kd"
    family = "cross-task"
    paper = "Hinton et al. 2015, arXiv:1503.02531 (through a class map)"
    Config = ClassMappedKDConfig
    presets = {"soft-only": {"alpha": 1.0}}
    label_space = "any"  # the map is validated here instead
    uses_unlabelled = True

    def __init__(self, config: ClassMappedKDConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        teacher_classes = list(ctx.teacher.meta.get("classes", [])) if ctx.teacher is not None else []
        self.mapping = resolve_map(config, teacher_classes, list(ctx.classes), ctx.bundle)
        self.register_buffer("matrix", class_matrix(self.mapping, teacher_classes, list(ctx.classes)), persistent=False)

    def term_weights(self) -> dict[str, float]:
        return alpha_blend("mapped_kd", self.config.alpha)

    def forward(self, batch, student, teacher, step):
        return {"mapped_kd": class_mapped_kd_loss(student.logits, teacher.logits, self.matrix, self.config.temperature)}
