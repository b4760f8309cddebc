"""Composition of strategies (``weight-selection+kd``) with explicit merge rules.

Rules, each violation a config error:
    * needs are united;
    * every member's ``init_student`` runs, in the order given;
    * at most one member supplies a data source;
    * at most one member has more than one stage; in a stage it marks ``exclusive`` only its own
      terms count (no hard-label term, no other member's terms);
    * the hard-label weight (``term_weights()["label"]``): members that change it must agree, or
      ``label_weight`` is set explicitly in the run config;
    * two members may not return a loss term of the same name.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from ..config import StrategySpec, build
from ..contract.context import RunContext
from ..contract.errors import ConfigError, unknown
from .checks import dropped_label_message
from .terms import check_returned, check_term
from ..contract.strategy import (LABEL_TERM, Batch, DataSource, Needs, Outputs, Stage, StepInfo, Strategy,
                                 label_weight_of)

# only when no installed strategy transfers across label spaces; the core names no plugin's strategies
CROSS_TASK_HINT = ("no installed strategy distils across label spaces: install a plugin that offers one (a strategy "
                   "with label_space = 'any'), or train the teacher on the student data's classes")


def resolve_params(cls: type[Strategy], spec: StrategySpec) -> Any:
    """Validated config of one member: defaults, then the named preset, then ``params``."""
    merged: dict[str, Any] = {}
    if spec.preset is not None:
        if spec.preset not in cls.presets:
            raise unknown(f"preset of strategy {cls.name!r}", spec.preset, cls.presets)
        merged.update(cls.presets[spec.preset])
    merged.update(spec.params or {})
    return build(cls.Config, merged, f"strategy.{cls.name}.")


@dataclass(frozen=True)
class Member:
    """One member of a run's strategy stack, resolved: what the rest of the run reads instead of its spec.

    Attributes:
        spec: the member as the config wrote it.
        cls: the strategy class the spec names.
        params: its validated parameters (``cls.Config``: defaults, then the preset, then ``params``).
        distribution: the distribution that offers it.
        spelling: how an effective config names it: ``NAME``, or ``DIST:NAME`` where two distributions offer
            the name (:meth:`kdzoo.zoo.plugins.Zoo.spelling`).
    """

    spec: StrategySpec
    cls: type[Strategy]
    params: Any
    distribution: str
    spelling: str

    @property
    def name(self) -> str:
        """The bare name that keys its terms, parameters and code identity."""
        return self.cls.name


def resolve_stack(specs: list[StrategySpec], zoo: Any, task: str | None = None) -> tuple[Member, ...]:
    """Look up and validate every member before any work is done; once per run.

    Raises:
        ConfigError: an unknown strategy or preset, a bad parameter, a member twice, or (``task`` given) a
            member that does not support the task.
    """
    seen, out = set(), []
    for spec in specs:
        entry = zoo.strategy(spec.name)
        cls = entry.obj
        if cls.name in seen:  # by its bare name: members, terms and parameters are keyed by it
            raise ConfigError(f"strategy {cls.name!r} appears twice in one stack")
        seen.add(cls.name)
        params = resolve_params(cls, spec)
        out.append(Member(spec, cls, params, entry.distribution, zoo.spelling(entry)))
        if task is not None:
            check_task(out[-1:], task)
    return tuple(out)


def check_task(members: Sequence[Member], task: str) -> None:
    """Every member supports ``task`` (a stack resolved before its data's task was known is checked again here)."""
    for m in members:
        if task not in m.cls.tasks:
            raise ConfigError(f"strategy {m.name!r} does not support {task} data "
                              f"(supports: {', '.join(sorted(m.cls.tasks))})")


def check_specs(specs: list[StrategySpec], zoo: Any, task: str | None = None) -> list[tuple[type[Strategy], Any]]:
    """``(class, parameters)`` of every member: :func:`resolve_stack` in the shape callers of this old name use."""
    return [(m.cls, m.params) for m in resolve_stack(specs, zoo, task)]


class StrategyStack(nn.Module):
    """The members of one run's strategy, behaving as one strategy towards the trainer."""

    def __init__(self, members: list[Strategy], label_weight: float | None = None,
                 distributions: dict[str, str] | None = None) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.distributions = dict(distributions or {})  # member name -> its distribution (named in term errors)
        changed = {m.name: w for m in members if (w := label_weight_of(m)) != 1.0}
        if label_weight is not None:
            self.label_weight = float(label_weight)
        elif len(set(changed.values())) > 1:
            weights = ", ".join(f"{name} {weight:g}" for name, weight in changed.items())
            raise ConfigError(f"strategies disagree on the hard-label weight ({weights}); set label_weight explicitly")
        else:
            self.label_weight = next(iter(changed.values()), 1.0)
        if self.label_weight > 0 and not self.needs().student.logits:
            raise ConfigError(dropped_label_message("+".join(self.names), self.label_weight))
        multi = [m.name for m in members if len(m.stages()) > 1]
        if len(multi) > 1:
            raise ConfigError(f"only one strategy in a stack may define stages; {', '.join(multi)} all do")
        owner = next((i for i, m in enumerate(members) if len(m.stages()) > 1), None)
        self._stages = members[owner].stages() if owner is not None else [Stage("main", 1.0)]
        self.term_owner: dict[str, str] = {}  # term -> the member that returned it at the last call (for messages)
        self._exclusive = {s.name: owner for s in self._stages if s.exclusive}  # stage -> the member that trains
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

    def stages(self) -> list[Stage]:
        return list(self._stages)

    def is_exclusive(self, stage: str) -> bool:
        """Whether ``stage`` trains its owner's terms alone (the trainer then adds no hard-label term)."""
        return stage in self._exclusive

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
        only = self._exclusive.get(step.stage)
        for i, m in enumerate(self.members):
            if only is not None and i != only:  # an exclusive stage trains its owner's terms alone
                continue
            weights = m.term_weights()
            returned = m(batch, student, teacher, step)
            check_returned(m, returned, self.distributions.get(m.name))
            for term, value in returned.items():
                if term == LABEL_TERM:
                    raise ConfigError(f"strategy {m.name!r} returns a loss term named {LABEL_TERM!r}, the hard-label "
                                      "loss's name; rename it")
                if term in out:
                    raise ConfigError(f"strategies {owner[term]} and {m.name} both return loss term {term!r}")
                weight = float(weights.get(term, 1.0))
                check_term(m, term, value, weight, student, batch, self.distributions.get(m.name))
                owner[term] = m.name
                out[term] = (value, weight)
        self.term_owner = owner
        return out


def instantiate_stack(members: Sequence[Member], ctx: RunContext, label_weight: float | None = None,
                      zoo: Any = None) -> StrategyStack:
    """The resolved members instantiated for one run (or seed) and checked against its models.

    ``zoo`` (default ``ctx.zoo``) only names the installed cross-task strategies in a label-space error.
    """
    zoo = zoo if zoo is not None else ctx.zoo
    instances = []
    for m in members:
        if m.cls.requires_teacher and ctx.teacher is None:
            raise ConfigError(f"strategy {m.name!r} needs a teacher; pass --teacher")
        if m.cls.label_space == "same" and ctx.teacher is not None:
            check_label_space(m.name, ctx.teacher.meta.get("classes", []), ctx.classes, ctx.task,
                              cross_task_alternatives(zoo, ctx.task))
        # each instance gets its own copy of the parameters: a strategy may keep and change its config
        instances.append(m.cls(copy.deepcopy(m.params), ctx))
    return StrategyStack(instances, label_weight, {m.name: m.distribution for m in members})


def build_stack(specs: list[StrategySpec], ctx: RunContext, zoo: Any, label_weight: float | None = None) -> StrategyStack:
    """Resolve ``specs`` and instantiate them (tools and tests that start from specs; a run resolves once
    and calls :func:`instantiate_stack` per seed)."""
    return instantiate_stack(resolve_stack(specs, zoo, ctx.task), ctx, label_weight, zoo)


def check_label_space(strategy: str, teacher_classes: list[str], student_classes: list[str], task: str,
                      alternatives: list[str] | None = None, teacher_data: str | None = None,
                      data: str | None = None) -> None:
    """Refuse logit transfer between different label spaces, in one line that names the mismatch.

    Args:
        strategy: the strategy that needs the teacher's label space.
        teacher_classes: the teacher's classes (``teacher.meta["classes"]``).
        student_classes: the data's classes.
        task: ``classification`` (anything else is not checked).
        alternatives: installed strategies that work across label spaces (default: a static hint).
        teacher_data: the teacher's dataset spec, named in the message when known.
        data: the student's dataset spec, named in the message when known.
    """
    teacher_classes, student_classes = list(teacher_classes), list(student_classes)
    if task != "classification" or teacher_classes == student_classes:
        return
    only_t = [c for c in teacher_classes if c not in student_classes]
    only_s = [c for c in student_classes if c not in teacher_classes]
    where = ""
    if teacher_data and data and teacher_data != data:
        where = f"teacher trained on {teacher_data}, student on {data}: "
    if only_s:
        what = f"the data has labels the teacher never saw: {_few(only_s)}"
        what += f"; the teacher's {_few(only_t)} are not in the data" if only_t else ""
    elif only_t:
        what = f"the data has only a subset of the teacher's classes; the teacher's {_few(only_t)} are not in the data"
    else:
        what = f"the same classes in another order (teacher: {_few(teacher_classes)}; data: {_few(student_classes)})"
    hint = CROSS_TASK_HINT
    if alternatives:
        hint = f"use a strategy that does not need the teacher's label space instead: {', '.join(alternatives)}"
    raise ConfigError(
        f"strategy {strategy!r} needs the teacher's label space, but teacher has {len(teacher_classes)} classes, "
        f"student data {len(student_classes)} ({where}{what}); {hint}"
    )


def _few(names: list[str], n: int = 6) -> str:
    shown = ", ".join(repr(c) for c in names[:n])
    return f"[{shown}{', ...' if len(names) > n else ''}]"


def cross_task_alternatives(zoo: Any, task: str = "classification") -> list[str]:
    """Installed strategies that distil from a teacher whose label space differs (``label_space = "any"``),
    for ``task``: what a label-space mismatch suggests."""
    try:
        zoo.collect()
        return sorted(n for n, e in zoo.strategies.items()
                      if e.obj.label_space == "any" and e.obj.requires_teacher and task in e.obj.tasks)
    except Exception:  # noqa: BLE001 - a hint must never hide the real error
        return []


__all__ = ["Member", "StrategyStack", "build_stack", "check_label_space", "check_specs", "check_task", "cross_task_alternatives",
           "instantiate_stack", "resolve_params", "resolve_stack"]
