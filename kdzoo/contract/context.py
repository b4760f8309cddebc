"""What a strategy can see of the run it belongs to."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

if TYPE_CHECKING:
    from ..config import RunConfig
    from ..data import DatasetBundle, Splits
    from ..models.wrapper import KDModel
    from ..zoo.plugins import Zoo


@dataclass
class RunContext:
    """Shared facts of one seed's run.

    Attributes:
        config: the resolved run config.
        student: the student being trained.
        teacher: the frozen teacher, or ``None`` for label-only runs.
        task: ``classification`` or ``regression``.
        classes: the student's label space.
        data_shape: shape of one input sample in data space.
        seed: the run seed.
        device: where tensors live.
        total_steps: optimiser-step budget.
        steps_per_epoch: optimiser steps per pass over the train split.
        run_dir: this seed's run directory (strategies write artefacts here), or ``None``.
        zoo: the loaded plugins.
        bundle: the dataset (strategies that need no real data must not read it).
        splits: the dataset's split indices.
        rank: this process's rank under torchrun (data sources seed their stream with it).
        world_size: number of processes.
        log: where strategies report (``print`` on the command line; silent on other ranks and in
            bench cells).
    """

    config: RunConfig
    student: KDModel
    teacher: KDModel | None
    task: str
    classes: list[str]
    data_shape: tuple[int, ...]
    seed: int
    device: torch.device
    total_steps: int = 0
    steps_per_epoch: int = 1
    run_dir: Path | None = None
    zoo: Zoo | None = None
    bundle: DatasetBundle | None = None
    splits: Splits | None = None
    rank: int = 0
    world_size: int = 1
    log: Callable[..., None] = print
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)
