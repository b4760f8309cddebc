"""What the data-free strategies share: the contract flags and the logging of inner-step terms."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from kdzoo.plugin import ConfigError, Needs, Requirement, RunContext, Strategy

from .sources import SyntheticSource


class DataFreeStrategy(Strategy):
    """Base of the data-free family: the strategy's source supplies every batch; no label is seen.

    The student's loss on a synthetic batch is the strategy's named term (``kd`` or ``l1``); the
    inner optimisation's last terms are logged too, as ``g_<term>`` with weight 0 (they train the
    generator or the pixels inside ``next_batch``, not the student).
    """

    family = "data-free"
    label_space = "same"
    reads_train_data = False
    source: SyntheticSource

    def __init__(self, config: Any, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        if ctx.teacher is None:
            raise ConfigError(f"strategy {self.name!r} needs a teacher; pass --teacher")
        if ctx.task != "classification":
            raise ConfigError(f"strategy {self.name!r} supports classification only")

    def needs(self) -> Needs:
        return Needs(Requirement(logits=True), Requirement(logits=True))

    def data_source(self, ctx: RunContext) -> SyntheticSource:
        return self.source

    def inner_terms(self) -> dict[str, Tensor]:
        """The inner step's last logged terms as ``g_<name>`` scalars (weight 0)."""
        return {f"g_{k}": torch.tensor(float(v)) for k, v in self.source.last.items()}

    def term_weights(self) -> dict[str, float]:
        return {f"g_{k}": 0.0 for k in self.source.last}


__all__ = ["DataFreeStrategy"]
