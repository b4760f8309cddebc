"""Map every student tensor to a teacher tensor of a model of the same family, and copy it over.

Key mapping (shared by every init strategy). timm and kdzoo models name their tensors with dotted
paths in which an integer segment is a child index of a block container: ``layer1.0.conv1.weight``
(ResNet), ``stages.1.blocks.2.mlp.fc1.weight`` (ConvNeXt), ``blocks.3.attn.qkv.weight`` (ViT),
``blocks.2.1.conv_pw.weight`` (EfficientNet: stage 2, block 1). For each container the child indices
present in the teacher's and the student's ``state_dict`` are compared:

* equal sets (``stages.0..3``, ``downsample.0/1``, a stem) map index to index;
* different sets (different depth) go through the strategy's *layer map*: ``student position j`` ->
  ``teacher position`` or ``None`` (left at random init). Containers nest, so ConvNeXt's depth is
  mapped within each stage.

Then a mapped tensor is copied (equal shape) or element-selected (see :mod:`.selection`), provided the
owning modules have the same type (a ``Linear`` never fills a ``BatchNorm2d``). The classifier
(``get_classifier()``) is transferred only when teacher and student share the label space.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .selection import FUSED_PROJECTIONS, ElementMode, NotSelectable, select_elements, select_pos_embed

LayerMap = Callable[[str, int, int], list[int | None]]
"""``(container path, student children, teacher children) -> teacher position per student position``."""


@dataclass
class ContainerMap:
    """How one block container of the student was filled (for the report)."""

    student_path: str
    teacher_path: str
    student_blocks: list[int]
    teacher_blocks: list[int]
    source: list[int | None]

    def line(self) -> str:
        src = ", ".join(f"{s}<-{'random' if t is None else t}" for s, t in zip(self.student_blocks, self.source))
        where = self.student_path
        if self.teacher_path != self.student_path:
            where += f" <- {self.teacher_path}"
        return f"{where}: {len(self.student_blocks)} of {len(self.teacher_blocks)} blocks [{src}]"


@dataclass
class TransferPlan:
    """Per student tensor: the new value, or why it stays at random init.

    Attributes:
        values: student key -> tensor to load (already cut to the student's shape).
        sources: student key -> ``(teacher key, "copied" | "selected" | note)``.
        left_random: student key -> reason.
        containers: depth maps of the block containers whose child sets differ.
        notes: anything else worth reporting (resampled position embeddings, ...).
    """

    values: dict[str, Tensor] = field(default_factory=dict)
    sources: dict[str, tuple[str, str]] = field(default_factory=dict)
    left_random: dict[str, str] = field(default_factory=dict)
    containers: list[ContainerMap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def first_n(container: str, n_student: int, n_teacher: int) -> list[int | None]:
    """Student block ``j`` <- teacher block ``j`` (Xu et al.'s first-N layer selection)."""
    return [j if j < n_teacher else None for j in range(n_student)]


def evenly_spaced(container: str, n_student: int, n_teacher: int) -> list[int | None]:
    """Student block ``j`` <- teacher block ``round(j * (n_T - 1) / (n_S - 1))``: first and last kept.

    For 6 of 12 blocks this gives DistilBERT's ``[0, 2, 4, 7, 9, 11]``. A student deeper than the teacher
    falls back to first-N (its extra blocks stay random).
    """
    if n_student > n_teacher:
        return first_n(container, n_student, n_teacher)
    if n_student == 1:
        return [0]
    return [int(j * (n_teacher - 1) / (n_student - 1) + 0.5) for j in range(n_student)]


def classifier_prefix(net: nn.Module) -> str | None:
    """Dotted name of ``net.get_classifier()`` (``fc``, ``head``, ``head.fc``, ``classifier``)."""
    get = getattr(net, "get_classifier", None)
    head = get() if callable(get) else None
    if not isinstance(head, nn.Module) or not any(True for _ in head.parameters()):
        return None
    return next((name for name, m in net.named_modules() if m is head and name), None)


def _children(keys: list[str]) -> dict[str, set[int]]:
    """Container path -> child indices present in the keys (``"layer1" -> {0, 1}``)."""
    out: dict[str, set[int]] = {}
    for key in keys:
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            if part.isdigit():
                out.setdefault(".".join(parts[:i]), set()).add(int(part))
    return out


def _owner_types(net: nn.Module) -> dict[str, str]:
    return {name: type(m).__name__ for name, m in net.named_modules()}


def _grid(net: nn.Module) -> tuple[int, int] | None:
    grid = getattr(getattr(net, "patch_embed", None), "grid_size", None)
    return (int(grid[0]), int(grid[1])) if grid is not None else None


class KeyMapper:
    """Resolves student keys to teacher keys through the nested block containers."""

    def __init__(self, teacher_keys: list[str], student_keys: list[str], layer_map: LayerMap) -> None:
        self.t_children = _children(teacher_keys)
        self.s_children = _children(student_keys)
        self.layer_map = layer_map
        self.containers: dict[str, ContainerMap] = {}
        self._cache: dict[tuple[str, str], tuple[list[int], list[int | None]]] = {}

    def teacher_key(self, student_key: str) -> tuple[str | None, str]:
        """The teacher key for ``student_key``, or ``None`` and the reason."""
        parts = student_key.split(".")
        mapped: list[str] = []
        for i, part in enumerate(parts):
            if not part.isdigit() or i == len(parts) - 1:
                mapped.append(part)
                continue
            s_path, t_path = ".".join(parts[:i]), ".".join(mapped)
            s_blocks = sorted(self.s_children.get(s_path, ()))
            t_blocks = sorted(self.t_children.get(t_path, ()))
            if not t_blocks:
                return None, f"teacher has no block container {t_path!r}"
            source = self._source(s_path, t_path, s_blocks, t_blocks)
            t_pos = source[s_blocks.index(int(part))]
            if t_pos is None:
                return None, f"teacher container {t_path!r} has only {len(t_blocks)} blocks"
            mapped.append(str(t_blocks[t_pos]))
        return ".".join(mapped), ""

    def _source(self, s_path: str, t_path: str, s_blocks: list[int], t_blocks: list[int]) -> list[int | None]:
        if (s_path, t_path) not in self._cache:
            if s_blocks == t_blocks:
                source: list[int | None] = list(range(len(s_blocks)))
            else:
                source = self.layer_map(s_path, len(s_blocks), len(t_blocks))
                self.containers[s_path] = ContainerMap(s_path, t_path, s_blocks, t_blocks,
                                                       [None if p is None else t_blocks[p] for p in source])
            self._cache[(s_path, t_path)] = (s_blocks, source)
        return self._cache[(s_path, t_path)][1]


def plan_transfer(teacher: nn.Module, student: nn.Module, layer_map: LayerMap, element_selection: ElementMode,
                  transfer_head: bool, head_reason: str = "") -> TransferPlan:
    """Decide, for every student tensor, its teacher source and the value to load.

    Args:
        teacher: the teacher network (``KDModel.net``).
        student: the student network, same family.
        layer_map: depth mapping of containers whose child sets differ.
        element_selection: how each dimension is cut (``uniform``, ``consecutive``, ``none``).
        transfer_head: whether the classifier may be transferred (same label space).
        head_reason: why not, for the report.
    """
    t_sd, s_sd = teacher.state_dict(), student.state_dict()
    t_types, s_types = _owner_types(teacher), _owner_types(student)
    head = classifier_prefix(student)
    mapper = KeyMapper(list(t_sd), list(s_sd), layer_map)
    plan = TransferPlan()
    for key, target in s_sd.items():
        if head is not None and not transfer_head and key.startswith(head + "."):
            plan.left_random[key] = f"classifier head not transferred: {head_reason}"
            continue
        t_key, reason = mapper.teacher_key(key)
        if t_key is None:
            plan.left_random[key] = reason
            continue
        if t_key not in t_sd:
            plan.left_random[key] = f"teacher has no tensor {t_key!r}"
            continue
        s_owner, t_owner = key.rpartition(".")[0], t_key.rpartition(".")[0]
        if s_types.get(s_owner) != t_types.get(t_owner):
            t_type, s_type = t_types.get(t_owner), s_types.get(s_owner)
            plan.left_random[key] = f"module type differs (teacher {t_type}, student {s_type})"
            continue
        source = t_sd[t_key]
        try:
            value, how = _select(key, source, target, element_selection, teacher, student)
        except NotSelectable as exc:
            plan.left_random[key] = f"{t_key}: {exc}"
            continue
        plan.values[key] = value.to(dtype=target.dtype, device=target.device)
        plan.sources[key] = (t_key, how)
        if how not in ("copied", "selected"):
            plan.notes.append(f"{key}: {how}")
    plan.containers = list(mapper.containers.values())
    return plan


def _select(key: str, source: Tensor, target: Tensor, mode: ElementMode, teacher: nn.Module,
            student: nn.Module) -> tuple[Tensor, str]:
    if source.shape == target.shape:
        return source.detach().clone(), "copied"
    if key.rpartition(".")[2] == "pos_embed":
        value, note = select_pos_embed(source, tuple(target.shape), mode, _grid(teacher), _grid(student))
        return value, "selected" if note == "tokens kept" else f"selected, {note}"
    owner = key.rpartition(".")[0].rpartition(".")[2]
    fused = FUSED_PROJECTIONS.get(owner, 1)
    return select_elements(source, tuple(target.shape), mode, fused=fused), "selected"


def apply_plan(student: nn.Module, plan: TransferPlan) -> None:
    """Load the planned tensors into ``student`` in place (everything else stays as it is)."""
    with torch.no_grad():
        state = student.state_dict()
        for key, value in plan.values.items():
            state[key].copy_(value)


def summarise(plan: TransferPlan, student: nn.Module) -> dict[str, Any]:
    """Counts for the report: tensors (``state_dict`` entries) and learnable parameters transferred."""
    s_sd = student.state_dict()
    params = dict(student.named_parameters())
    head = classifier_prefix(student)
    body = {k: p for k, p in params.items() if head is None or not k.startswith(head + ".")}
    from_teacher = sum(p.numel() for k, p in params.items() if k in plan.values)
    body_from_teacher = sum(p.numel() for k, p in body.items() if k in plan.values)
    body_total = sum(p.numel() for p in body.values())
    reasons: dict[str, list[str]] = {}
    for key, why in plan.left_random.items():
        reasons.setdefault(_generic(why), []).append(key)
    return {
        "tensors_from_teacher": len(plan.values), "tensors_total": len(s_sd),
        "tensors_copied": sum(1 for _, how in plan.sources.values() if how == "copied"),
        "tensors_selected": sum(1 for _, how in plan.sources.values() if how != "copied"),
        "params_from_teacher": from_teacher, "params_total": sum(p.numel() for p in params.values()),
        "backbone_coverage": body_from_teacher / body_total if body_total else 0.0,
        "left_random": [{"reason": r, "count": len(keys), "tensors": keys} for r, keys in reasons.items()],
    }


def _generic(reason: str) -> str:
    """Group similar reasons (``teacher container 'layer1' has only 2 blocks``) across tensors."""
    return re.sub(r"^[\w.]+: ", "", reason)


__all__ = ["ContainerMap", "KeyMapper", "LayerMap", "TransferPlan", "apply_plan", "classifier_prefix", "evenly_spaced",
           "first_n", "plan_transfer", "summarise"]
