"""Composition of strategies (``weight-selection+kd``) with explicit merge rules.

Rules, each violation a config error:
    * needs are united; gradients flow through the teacher if any member asks for it;
    * every member's ``init_student`` runs, in the order given;
    * at most one member supplies a data source;
    * at most one member has more than one stage;
    * the hard-label weight: members that change it must agree, or ``label_weight`` is set
      explicitly in the run config;
    * two members may not return a loss term of the same name.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import Tensor, nn

from .config import StrategySpec, build
from .context import RunContext
from .errors import ConfigError, unknown
from .strategy import Batch, DataSource, Needs, Outputs, Stage, StepInfo, Strategy

CROSS_TASK_HINT = "use a label-space-agnostic strategy (e.g. rkd, sp, class-mapped-kd from kdzoo-crosstask)"


def resolve_params(cls: type[Strategy], spec: StrategySpec) -> Any:
    """Validated config of one member: defaults, then the named preset, then ``params``."""
    merged: dict[str, Any] = {}
    if spec.preset is not None:
        if spec.preset not in cls.presets:
            raise unknown(f"preset of strategy {cls.name!r}", spec.preset, cls.presets)
        merged.update(cls.presets[spec.preset])
    merged.update(spec.params or {})
    return build(cls.Config, merged, f"strategy.{cls.name}.")


def check_specs(specs: list[StrategySpec], zoo: Any, task: str | None = None) -> list[tuple[type[Strategy], Any]]:
    """Look up and validate every member before any work is done."""
    seen, out = set(), []
    for spec in specs:
        if spec.name in seen:
            raise ConfigError(f"strategy {spec.name!r} appears twice in one stack")
        seen.add(spec.name)
        cls = zoo.strategy(spec.name).obj
        params = resolve_params(cls, spec)
        if task is not None and task not in cls.tasks:
            raise ConfigError(f"strategy {cls.name!r} does not support {task} data (supports: {', '.join(sorted(cls.tasks))})")
        out.append((cls, params))
    return out


class StrategyStack(nn.Module):
    """The members of one run's strategy, behaving as one strategy towards the trainer."""

    def __init__(self, members: list[Strategy], label_weight: float | None = None) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        changed = {m.name: m.label_weight for m in members if m.label_weight != 1.0}
        if label_weight is not None:
            self.label_weight = float(label_weight)
        elif len(set(changed.values())) > 1:
            raise ConfigError(f"strategies disagree on the hard-label weight {changed}; set label_weight explicitly")
        else:
            self.label_weight = next(iter(changed.values()), 1.0)
        multi = [m.name for m in members if len(m.stages()) > 1]
        if len(multi) > 1:
            raise ConfigError(f"only one strategy in a stack may define stages; {', '.join(multi)} all do")
        self._stages = next((m.stages() for m in members if len(m.stages()) > 1), [Stage("main", 1.0)])
        if abs(sum(s.fraction for s in self._stages) - 1.0) > 1e-6:
            raise ConfigError(f"stage fractions must sum to 1, got {[s.fraction for s in self._stages]}")

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]

    def needs(self) -> Needs:
        out = Needs(student=self.members[0].needs().student)
        for m in self.members:
            out = out | m.needs()
        return out

    @property
    def uses_unlabelled(self) -> bool:
        return any(m.uses_unlabelled for m in self.members)

    @property
    def teacher_grad(self) -> bool:
        return any(m.teacher_grad for m in self.members)

    def stages(self) -> list[Stage]:
        return list(self._stages)

    def stage_at(self, step: int, total: int) -> tuple[Stage, int, int]:
        """The stage of ``step`` with its start step and length."""
        start = 0
        for i, stage in enumerate(self._stages):
            length = total - start if i == len(self._stages) - 1 else round(stage.fraction * total)
            if step < start + length:
                return stage, start, length
            start += length
        return self._stages[-1], start, 0

    def init_student(self, ctx: RunContext) -> dict[str, Any]:
        return {m.name: r for m in self.members if (r := m.init_student(ctx)) is not None}

    def data_source(self, ctx: RunContext) -> DataSource | None:
        sources = [(m.name, s) for m in self.members if (s := m.data_source(ctx)) is not None]
        if len(sources) > 1:
            raise ConfigError(f"two strategies supply training data ({sources[0][0]}, {sources[1][0]}); keep one")
        return sources[0][1] if sources else None

    def student_optimizer_parameters(self) -> list[nn.Parameter]:
        return [p for m in self.members for p in m.student_optimizer_parameters()]

    def losses(self, batch: Batch, student: Outputs, teacher: Outputs | None, step: StepInfo) -> dict[str, tuple[Tensor, float]]:
        """Every member's terms with their weights: ``{term: (value, weight)}``."""
        out: dict[str, tuple[Tensor, float]] = {}
        owner: dict[str, str] = {}
        for m in self.members:
            weights = m.term_weights()
            for term, value in m(batch, student, teacher, step).items():
                if term in out:
                    raise ConfigError(f"strategies {owner[term]} and {m.name} both return loss term {term!r}")
                owner[term] = m.name
                out[term] = (value, float(weights.get(term, 1.0)))
        return out


def build_stack(specs: list[StrategySpec], ctx: RunContext, zoo: Any, label_weight: float | None = None) -> StrategyStack:
    """Instantiate the validated members for this run and check them against its models."""
    members = []
    for cls, params in check_specs(specs, zoo, ctx.task):
        if cls.requires_teacher and ctx.teacher is None:
            raise ConfigError(f"strategy {cls.name!r} needs a teacher; pass --teacher")
        if cls.label_space == "same" and ctx.teacher is not None:
            check_label_space(cls.name, ctx.teacher.meta.get("classes", []), ctx.classes, ctx.task)
        members.append(cls(params, ctx))
    return StrategyStack(members, label_weight)


def check_label_space(strategy: str, teacher_classes: list[str], student_classes: list[str], task: str) -> None:
    """Refuse logit transfer between different label spaces, naming the mismatch."""
    if task != "classification" or list(teacher_classes) == list(student_classes):
        return
    only_t = [c for c in teacher_classes if c not in student_classes]
    only_s = [c for c in student_classes if c not in teacher_classes]
    raise ConfigError(
        f"strategy {strategy!r} needs the teacher's label space: teacher has {len(teacher_classes)} classes, "
        f"student data {len(student_classes)} (teacher only: {only_t[:5]}, data only: {only_s[:5]}); {CROSS_TASK_HINT}"
    )


def describe_params(params: Any) -> dict[str, Any]:
    return dataclasses.asdict(params) if dataclasses.is_dataclass(params) else {}


__all__ = ["StrategyStack", "build_stack", "check_label_space", "check_specs", "resolve_params"]
