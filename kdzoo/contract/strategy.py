"""The strategy contract every distillation family builds on.

A strategy is an ``nn.Module``: whatever it trains (regressors, projectors, generators) is a
sub-module, so it reaches the optimiser and the checkpoint with no extra code. The trainer asks a
strategy only through the methods below and never branches on its name.

What the contract covers, per family:
    logit KD       ``forward`` returns named loss terms from student/teacher logits.
    feature        ``needs`` asks for pooled features or intermediate maps (timm's
                   ``forward_intermediates``); projectors are sub-modules; ``stages`` gives
                   FitNets' hint stage before KD.
    init transfer  ``init_student`` edits the student's weights before step 0.
    data-free      ``data_source`` supplies every training batch (no real loader is built); the
                   source's own inner optimisation (a generator step) runs inside
                   ``DataSource.next_batch``.
    cross-task     ``label_space = "any"`` lifts the same-label-space check of logit KD.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from .params import param_help, param_range

if TYPE_CHECKING:
    from .context import RunContext

FAMILIES = ("baseline", "logit", "feature", "init", "data-free", "cross-task")


@dataclass(frozen=True)
class Requirement:
    """What one model must produce for a step.

    Attributes:
        logits: the model's outputs ``[B, K]``.
        pooled: pre-logit features ``[B, D]``.
        features: indices of intermediate feature maps (timm ``forward_intermediates``).
    """

    logits: bool = False
    pooled: bool = False
    features: tuple[int, ...] = ()

    def __or__(self, other: Requirement) -> Requirement:
        return Requirement(
            self.logits or other.logits,
            self.pooled or other.pooled,
            tuple(sorted(set(self.features) | set(other.features))),
        )

    @property
    def any(self) -> bool:
        return self.logits or self.pooled or bool(self.features)


@dataclass(frozen=True)
class Needs:
    """What a strategy needs from the student and the teacher on each step."""

    student: Requirement = Requirement(logits=True)
    teacher: Requirement = Requirement()

    def __or__(self, other: Needs) -> Needs:
        return Needs(self.student | other.student, self.teacher | other.teacher)


@dataclass
class Outputs:
    """A model's outputs for one batch.

    Attributes:
        logits: ``[B, K]`` class scores (or ``[B, T]`` regression outputs).
        pooled: ``[B, D]`` pre-logit features, when asked for.
        features: intermediate maps by index, ``[B, C, H, W]`` (or ``[B, N, C]`` tokens).
    """

    logits: Tensor | None = None
    pooled: Tensor | None = None
    features: dict[int, Tensor] = field(default_factory=dict)


@dataclass
class Batch:
    """One training micro-batch.

    Attributes:
        x: inputs in data space, ``[B, C, H, W]`` in [0, 1] or ``[B, D]``.
        y: targets ``[B]`` (class ids; ``-1`` where unlabelled) or ``[B, T]`` for regression;
            ``None`` when the data carries no labels at all (synthetic data).
        labelled: ``[B]`` bool mask of samples whose label may be used.
        index: ``[B]`` dataset indices (``-1`` for synthetic samples).
        draw: ``[B]`` each sample's draw (which pass of its pool; its augmented view is a pure function
            of view seed, draw and index), or ``None`` where views are not drawn that way.
    """

    x: Tensor
    y: Tensor | None
    labelled: Tensor
    index: Tensor
    draw: Tensor | None = None

    @property
    def size(self) -> int:
        return self.x.shape[0]


@dataclass(frozen=True)
class Stage:
    """A training stage: ``fraction`` of the step budget, named for logs (e.g. ``hint``, ``kd``).

    Attributes:
        name: the stage's name (``StepInfo.stage``).
        fraction: share of the step budget.
        exclusive: only the strategy that defines the stages trains in it: the hard-label term
            and the other stack members' terms are left out (FitNets' hint stage).
    """

    name: str
    fraction: float
    exclusive: bool = False


@dataclass(frozen=True)
class StepInfo:
    """Where training is when a strategy is called.

    Attributes:
        step: optimiser step, 0-based.
        total_steps: the run's optimiser-step budget.
        epoch: fractional epoch (``step / steps_per_epoch``), for epoch-based warm-ups.
        stage: the current stage's name.
        stage_step: step within the stage, 0-based.
        stage_steps: length of the stage in steps.
    """

    step: int
    total_steps: int
    epoch: float
    stage: str = "main"
    stage_step: int = 0
    stage_steps: int = 0


class DataSource(nn.Module):
    """Supplies training batches. A strategy that returns one replaces the real training data:
    the trainer then builds no training loader at all (out-of-domain or cached sets load their own).

    Being an ``nn.Module``, a source's generator (and, through ``get_extra_state``, its optimiser
    and RNG) is checkpointed with the strategy that owns it.
    """

    def next_batch(self, step: StepInfo, ctx: RunContext) -> Batch:
        """Return the batch for ``step``; may first run an inner optimisation (generator step)."""
        raise NotImplementedError


@dataclass
class NoParams:
    """Config of a strategy without parameters."""


class Strategy(nn.Module):
    """Base class of every distillation strategy.

    Subclasses set the class attributes, define ``Config`` (a dataclass whose defaults are the
    strategy's defaults) and override :meth:`forward`; every other method has a neutral default.

    Class attributes:
        name: registry key, lower-case with hyphens (``kd``, ``weight-selection``).
        family: one of :data:`FAMILIES`.
        paper: citation with arXiv id.
        Config: dataclass of hyperparameters, validated from YAML ``params``.
        presets: named parameter sets (e.g. ``paper``, ``cpu``) applied over the defaults; ``smoke``
            keeps a conformance run (:func:`kdzoo.testing.check_strategy` without ``params``) small,
            e.g. few inversion iterations.
        tasks: tasks it supports (``classification``, ``regression``).
        label_space: ``same`` if teacher and student must share classes (logit KD); ``any`` if not.
        requires_teacher: whether a teacher must be configured.
        uses_unlabelled: whether it learns from unlabelled train inputs (they are skipped otherwise).
        reads_train_data: ``False`` for strategies whose data source replaces the training data
            (data-free): the student then takes the teacher's input normalisation instead of
            statistics of the train split, so no training input is ever read.
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = "logit"
    paper: ClassVar[str] = ""
    Config: ClassVar[type] = NoParams
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    tasks: ClassVar[frozenset[str]] = frozenset({"classification"})
    label_space: ClassVar[Literal["same", "any"]] = "same"
    requires_teacher: ClassVar[bool] = True
    uses_unlabelled: ClassVar[bool] = False
    reads_train_data: ClassVar[bool] = True

    def __init__(self, config: Any, ctx: RunContext) -> None:
        super().__init__()
        self.config = config

    # -- what the trainer asks -------------------------------------------------------------------
    def needs(self) -> Needs:
        """What the student and teacher must output each step (default: both logits)."""
        return Needs(Requirement(logits=True), Requirement(logits=True) if self.requires_teacher else Requirement())

    def term_weights(self) -> dict[str, float]:
        """Weight of each loss term: the terms ``forward`` returns, and ``"label"``, the hard-label
        loss the trainer adds on labelled samples. Missing terms weigh 1.0; ``alpha_blend`` writes
        Hinton's ``alpha`` / ``1 - alpha`` split."""
        return {}

    def stages(self) -> list[Stage]:
        """Training stages in order; fractions must sum to 1."""
        return [Stage("main", 1.0)]

    def init_student(self, ctx: RunContext) -> dict[str, Any] | None:
        """Change the student's weights before training starts (not called on resume).

        Returns:
            An optional report (JSON-serialisable), saved in the run directory.
        """
        return None

    def data_source(self, ctx: RunContext) -> DataSource | None:
        """Return a source of training batches to use instead of the real training data."""
        return None

    def student_optimizer_parameters(self) -> Iterator[nn.Parameter]:
        """Own parameters trained by the student's optimiser (not e.g. a generator's)."""
        source_params = set()
        for module in self.modules():
            if isinstance(module, DataSource):
                source_params.update(id(p) for p in module.parameters())
        return (p for p in self.parameters() if p.requires_grad and id(p) not in source_params)

    def forward(self, batch: Batch, student: Outputs, teacher: Outputs | None, step: StepInfo) -> dict[str, Tensor]:
        """Compute this strategy's unweighted loss terms for one batch.

        Args:
            batch: the micro-batch (``batch.labelled`` marks usable labels).
            student: the student's outputs, as asked for by :meth:`needs`.
            teacher: the teacher's outputs (``None`` when no teacher output is needed).
            step: where training is (for warm-ups, schedules and stages).

        Returns:
            ``{term name: scalar tensor}``; the trainer weights them with :meth:`term_weights`,
            adds the hard-label term (``"label"``, a name ``forward`` must not use) and logs every term.
        """
        return {}

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Plain-data description for listings and docs."""
        import dataclasses

        fields = dataclasses.fields(cls.Config)
        params = {f.name: _default_of(f) for f in fields}
        return {
            "name": cls.name, "family": cls.family, "paper": cls.paper,
            "summary": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
            "params": params, "help": param_help(cls.Config), "ranges": param_range(cls.Config),
            "presets": {k: dict(v) for k, v in cls.presets.items()},
            "tasks": sorted(cls.tasks), "label_space": cls.label_space,
        }


def _default_of(f: Any) -> Any:
    import dataclasses

    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


LABEL_TERM = "label"  # the hard-label loss's name among the term weights and in the logs


def alpha_blend(term: str, alpha: float) -> dict[str, float]:
    """Term weights that share one unit between ``term`` (``alpha``) and the hard labels (``1 - alpha``).

    Hinton KD's convention, used by every strategy with an ``alpha`` parameter::

        def term_weights(self):
            return kdzoo.plugin.alpha_blend("kd", self.config.alpha)
    """
    return {term: alpha, LABEL_TERM: 1.0 - alpha}


def label_weight_of(strategy: Strategy) -> float:
    """The hard-label weight a strategy asks for (``term_weights()["label"]``, 1.0 when absent)."""
    return float(strategy.term_weights().get(LABEL_TERM, 1.0))


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values[mask]``, zero (with a graph) when the mask is empty."""
    if mask.any():
        return values[mask].mean()
    return values.sum() * 0.0


def zero_like_graph(t: Tensor) -> Tensor:
    """A zero scalar connected to ``t``'s graph."""
    return t.sum() * 0.0


__all__ = [
    "Batch", "DataSource", "FAMILIES", "LABEL_TERM", "Needs", "NoParams", "Outputs", "Requirement", "Stage",
    "StepInfo", "Strategy", "alpha_blend", "label_weight_of", "masked_mean", "zero_like_graph",
]
