"""Direct copy — the student starts as the teacher where tensors agree in name and shape: the same
architecture (self-distillation, born-again networks: Furlanello et al., "Born-Again Neural Networks",
ICML 2018, arXiv:1805.04770) or a fine-tune from a teacher checkpoint (e.g. on a new label space, whose
classifier stays random).

Unlike weight selection nothing is cut: every non-classifier tensor must match exactly, otherwise the
pair is refused (unless ``allow_partial``, which copies what matches).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kdzoo.plugin import ConfigError, RunContext, param

from .base import ParameterInit, model_label
from .mapping import LayerMap, TransferPlan, first_n


@dataclass
class DirectCopyConfig:
    """DirectCopy parameters (each field: default, bounds, help)."""

    allow_partial: bool = param(False, help="copy the tensors that match and leave the others at random init.")


class DirectCopy(ParameterInit):
    """Direct copy: load every teacher tensor whose name and shape match the student's."""

    name = "direct-copy"
    paper = "Furlanello et al. ICML 2018 (born-again networks), arXiv:1805.04770"
    Config = DirectCopyConfig

    def layer_map(self) -> LayerMap:
        return first_n

    def element_selection(self):
        return "none"

    def check_plan(self, plan: TransferPlan, summary: dict[str, Any], ctx: RunContext) -> None:
        if self.config.allow_partial:
            return
        head = "classifier head not transferred"
        body = {k: why for k, why in plan.left_random.items() if not why.startswith(head)}
        if body:
            key, why = next(iter(body.items()))
            raise ConfigError(
                f"direct-copy: {len(body)} student tensors of {model_label(ctx.student)} have no equal teacher tensor "
                f"in {model_label(ctx.teacher)} (e.g. {key}: {why}); use weight-selection for a smaller student, "
                f"or set strategy.direct-copy.allow_partial=true")
