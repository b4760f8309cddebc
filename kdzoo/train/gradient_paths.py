"""The check that no weighted loss term is a silent no-op.

A term that never reaches a trainable parameter of the student changes nothing but the logged loss
(and the CPU bill): on a ``linear`` student, whose "pooled features" are its own input, a feature
term trains only its projector. Before training, :func:`check_gradient_paths` runs one forward pass
per stage on a small synthetic batch, on copies of the student and the strategy so that nothing of
the real run moves (no BN statistics, no strategy state, no RNG draw), and follows every term with
weight above zero back to the student's parameters.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch

from ..contract.errors import NotApplicable
from ..contract.strategy import Batch, Outputs, Requirement, StepInfo
from ..zoo.checks import package_line
from .step import StepModule, teacher_outputs

if TYPE_CHECKING:
    from .trainer import Trainer

PROBE_BATCH = 8  # small, but enough for batch statistics and relational (pairwise, triplet) terms


def check_gradient_paths(trainer: Trainer) -> None:
    """Fail if a weighted loss term has no gradient path to a trainable student parameter.

    Every stage is probed at its first step, where the stack's static term weights apply (a
    warm-up that scales a term inside ``forward`` keeps its graph, so it is still followed).

    Raises:
        NotApplicable: one line naming the strategy, the term and the reason.
    """
    ctx, stack = trainer.ctx, trainer.stack
    if not any(p.requires_grad for p in ctx.student.parameters()):
        return  # nothing to train: not this check's business
    devices = [ctx.device] if ctx.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        # shared, never copied: the run context (data), the frozen teacher
        memo = {id(ctx): ctx, id(ctx.teacher): ctx.teacher}
        student = copy.deepcopy(ctx.student, memo)
        probe_stack = copy.deepcopy(stack, memo)

        step_module = StepModule(student, probe_stack, ctx.task, trainer.cfg.optim.label_smoothing)
        batch = _probe_batch(ctx)
        params = [p for p in student.parameters() if p.requires_grad]
        seen: set[str] = set()
        for start in _stage_starts(stack, ctx.total_steps):
            stage, first, length = stack.stage_at(start, ctx.total_steps)
            info = StepInfo(first, ctx.total_steps, first / max(1, ctx.steps_per_epoch), stage.name, 0, length)
            teacher = _teacher_outputs(trainer, batch)
            _, terms, _ = step_module(batch, teacher, info)
            for term, (value, weight) in terms.items():
                if weight <= 0 or term in seen:
                    continue
                if value.requires_grad:
                    grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
                    if any(g is not None for g in grads):
                        seen.add(term)
                        continue
                owner = "the hard-label loss" if term == "label" else probe_stack.term_owner.get(term, "+".join(stack.names))
                raise NotApplicable(
                    f"strategy {owner!r}{_origin(stack, owner)}: loss term {term!r} (weight {weight:g}, stage "
                    f"{stage.name!r}) never reaches a trainable parameter of the student: "
                    f"{_reason(ctx, student, batch, trainer.needs.student)}{_forward_line(stack, owner)}")


def _origin(stack, owner: str) -> str:
    """`` of DIST`` for the member ``owner`` of ``stack`` (empty when unknown)."""
    dist = getattr(stack, "distributions", {}).get(owner)
    return f" of {dist}" if dist else ""


def _forward_line(stack, owner: str) -> str:
    """`` (PACKAGE/FILE:LINE)`` of member ``owner``'s ``forward``: where the term that trains nothing is made
    (package-relative: the line lands in bench tables, the same on every machine)."""
    member = next((m for m in stack.members if m.name == owner), None)
    where = package_line(type(member).forward) if member is not None else ""
    return f" ({where})" if where else ""


def _stage_starts(stack, total: int) -> list[int]:
    starts, step = [], 0
    while step < total:
        _, start, length = stack.stage_at(step, total)
        starts.append(start)
        step = start + max(1, length)
    return starts or [0]


def _probe_batch(ctx) -> Batch:
    """Random inputs of the data's shape; half labelled, so labelled-only and unlabelled-only terms both run."""
    x = torch.rand(PROBE_BATCH, *ctx.data_shape, device=ctx.device)
    if ctx.task == "regression":
        y = torch.randn(PROBE_BATCH, max(1, len(ctx.classes)), device=ctx.device)
    else:
        y = torch.arange(PROBE_BATCH, device=ctx.device) % max(1, len(ctx.classes))
    labelled = torch.arange(PROBE_BATCH, device=ctx.device) % 2 == 0
    return Batch(x=x, y=y, labelled=labelled, index=torch.full((PROBE_BATCH,), -1))


def _teacher_outputs(trainer: Trainer, batch: Batch) -> Outputs | None:
    if trainer.ctx.teacher is None:
        return None
    return teacher_outputs(trainer.ctx.teacher.outputs, batch.x, trainer.needs.teacher, trainer.teacher_dtype)


def _reason(ctx, student, batch: Batch, need: Requirement) -> str:
    """Why no gradient arrives: the student's features are parameter-free, or the term ignores the student."""
    name = ctx.config.student.name if ctx.config is not None else "student"
    if need.pooled or need.features:
        with torch.enable_grad():
            out = student.outputs(batch.x, Requirement(pooled=need.pooled, features=need.features))
        flat = ([out.pooled] if out.pooled is not None else []) + list(out.features.values())
        if flat and not any(t.requires_grad for t in flat):
            return f"student {name!r} has no features to match (its features are its input)"
    return "the term does not depend on the student's outputs"


__all__ = ["check_gradient_paths"]
