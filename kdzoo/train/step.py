"""One training step's loss, shared by the engine's :class:`~kdzoo.train.trainer.Trainer` and :class:`kdzoo.Distiller`.

Both call the same three pieces, so a term logged by ``kdzoo distill`` is the term a user's own
loop gets from the distiller: :func:`step_info` (where training is, stages included),
:func:`teacher_outputs` (the frozen teacher, always without gradients: its outputs are constants) and
:class:`StepModule` (student outputs, every strategy term, the hard-label term, the weighted total).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..models.wrapper import KDModel
from ..zoo.stack import StrategyStack
from ..contract.strategy import LABEL_TERM, Batch, Outputs, Requirement, StepInfo


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no parameter gradients (BN statistics never update)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def step_info(stack: StrategyStack, step: int, total_steps: int, steps_per_epoch: int) -> StepInfo:
    """Where optimiser step ``step`` (0-based) lies: its epoch, stage and place within the stage."""
    stage, start, length = stack.stage_at(step, total_steps)
    return StepInfo(step, total_steps, step / steps_per_epoch, stage.name, step - start, length)


def teacher_outputs(teacher_fn: Callable[[torch.Tensor, Requirement], Outputs], x: torch.Tensor, need: Requirement,
                    dtype: torch.dtype = torch.float32) -> Outputs | None:
    """The teacher's outputs for ``x`` (``[B, ...]`` in data space), as float32.

    Args:
        teacher_fn: ``KDModel.outputs`` of the frozen teacher (or its compiled version).
        x: the batch's inputs.
        need: what the stack needs from the teacher; ``None`` is returned when it needs nothing.
        dtype: the teacher's weights' dtype (inputs are cast to it, outputs back to float32).
    """
    if not need.any:
        return None
    if dtype != torch.float32:
        x = x.to(dtype)
    with torch.no_grad():  # the teacher is a constant target; a generator's step runs its own teacher pass
        out = teacher_fn(x, need)
    if dtype != torch.float32:
        out = Outputs(logits=None if out.logits is None else out.logits.float(),
                      pooled=None if out.pooled is None else out.pooled.float(),
                      features={k: v.float() for k, v in out.features.items()})
    return out


class StepModule(nn.Module):
    """Student plus strategy: everything trained by the student's optimiser, in one module.

    This is what DistributedDataParallel wraps (the teacher never is), so gradients of the student
    and of the strategy's projectors are all-reduced together; single-process runs and
    :class:`kdzoo.Distiller` call it as is.
    """

    def __init__(self, student: KDModel, stack: StrategyStack, task: str, label_smoothing: float) -> None:
        super().__init__()
        self.student, self.stack = student, stack
        self.task, self.label_smoothing = task, label_smoothing
        self.needs = stack.needs()

    def label_loss(self, batch: Batch, logits: torch.Tensor) -> torch.Tensor | None:
        """Cross-entropy (MSE for regression) on the labelled samples, ``None`` when there are none."""
        if self.stack.label_weight == 0 or batch.y is None or not batch.labelled.any():
            return None
        m = batch.labelled
        if self.task == "regression":
            return F.mse_loss(logits[m].float(), batch.y[m].float())
        return F.cross_entropy(logits[m].float(), batch.y[m], label_smoothing=self.label_smoothing)

    def forward(self, batch: Batch, teacher: Outputs | None, info: StepInfo
                ) -> tuple[torch.Tensor, dict[str, tuple[torch.Tensor, float]], Outputs]:
        """One micro-batch's loss.

        Returns:
            The weighted total (scalar), every term ``{name: (value, weight)}`` (the hard-label term
            is ``label``) and the student's outputs (``logits [B, K]`` when computed).
        """
        s_out = self.student.outputs(batch.x, self.needs.student)
        terms = self.stack.losses(batch, s_out, teacher, info)
        label = None
        if s_out.logits is not None and not self.stack.is_exclusive(info.stage):
            label = self.label_loss(batch, s_out.logits)
        if label is not None:
            terms[LABEL_TERM] = (label, self.stack.label_weight)
        if not terms:
            raise RuntimeError(f"strategy {'+'.join(self.stack.names)} returned no loss term at step {info.step}")
        total = sum(w * v.float() for v, w in terms.values())
        return total, terms, s_out


__all__ = ["StepModule", "freeze", "step_info", "teacher_outputs"]
