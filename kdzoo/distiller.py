"""``kdzoo.Distiller``: any strategy stack of the zoo as one ``nn.Module`` for your own training loop.

The distiller is built from the engine's own pieces: :func:`kdzoo.zoo.stack.resolve_stack` validates
the strategies once and :func:`kdzoo.zoo.stack.instantiate_stack` builds them (projectors and strategy
state are its sub-modules), init
strategies run in the constructor as ``kdzoo distill`` runs them before step 0, and every call
goes through :class:`kdzoo.train.step.StepModule`, the module the engine's trainer trains. What the
engine does around it (the batch plan, the optimiser, the schedule, checkpoints, evaluation) is
the caller's::

    distiller = kdzoo.Distiller(student, teacher, "at+kd", kd={"temperature": 4.0})
    optimizer = torch.optim.AdamW(distiller.trainable_parameters(), lr=1e-3)
    out = distiller(x, y)          # x [B, C, H, W] in [0, 1], y [B] class ids
    out.loss.backward()            # out.terms: {"kd": ..., "at": ..., "label": ...}

Data-free strategies supply their own training data and therefore stay engine-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from .config import make_config
from .contract.context import RunContext
from .contract.errors import ConfigError
from .models.wrapper import KDModel
from .zoo.stack import build_stack, instantiate_stack, resolve_stack
from .train.step import StepModule, freeze, step_info, teacher_outputs
from .contract.strategy import Batch, Requirement, Strategy
from .config import ModelConfig, StrategySpec, parse_strategy
from .data import DatasetBundle, Splits
from .models.wrapper import create_model, load_model
from .zoo.plugins import load_zoo


@dataclass
class DistillOutput:
    """What one call of :class:`Distiller` returns.

    Attributes:
        loss: the weighted total, a scalar to call ``backward()`` on.
        terms: every unweighted loss term by name (``label`` is the hard-label term), scalars.
        weights: the weight of each term in ``loss``.
        logits: the student's outputs ``[B, K]`` (``None`` in a stage that computes no logits).
    """

    loss: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    logits: Tensor | None = None

    def items(self) -> dict[str, float]:
        """``{"loss": total, term: value, ...}`` as floats, for a logger."""
        return {"loss": float(self.loss.detach()), **{k: float(v.detach()) for k, v in self.terms.items()}}


class ModuleModel(KDModel):
    """A plain ``nn.Module`` behind the :class:`KDModel` interface: inputs pass through unchanged.

    Strategies that need pooled features or intermediate maps use timm's feature API
    (``forward_features``, ``forward_head``, ``forward_intermediates``); :class:`Distiller` checks
    a plain module has it before training.
    """

    def __init__(self, net: nn.Module, meta: dict[str, Any]) -> None:
        super().__init__(net, meta)

    def preprocess(self, x: Tensor) -> Tensor:
        return x


class Distiller(nn.Module):
    """A strategy stack, its student and its frozen teacher; ``forward(x, y)`` gives the loss terms.

    Args:
        student: a :class:`KDModel` (e.g. from :func:`kdzoo.load_model`), a plain ``nn.Module``
            returning logits ``[B, K]`` (timm models keep their feature API), or a model name
            (timm's or a registered one such as ``lenet5``; needs ``num_classes`` and ``input_shape``).
        teacher: the same kinds, or a path to an exported kdzoo model; ``None`` for teacher-free
            strategies (``ce``). It is frozen: eval mode, no gradients, never in the optimiser.
        strategy: ``"kd"``, a stack ``"at+kd"``, or a list of ``{"name", "params", "preset"}`` specs.
        num_classes: the student's classes when they cannot be read from a :class:`KDModel`.
        classes: class names (default ``"0".."K-1"``); logit strategies check the teacher shares them.
        input_shape: one sample's shape in data space, ``(C, H, W)`` or ``(D,)`` (default: the
            student's ``KDModel`` input shape); projectors are sized by a probe of this shape.
        task: ``classification`` or ``regression``.
        total_steps: the optimiser-step budget; needed by strategies with stages (FitNets' hint
            stage) and schedules.
        steps_per_epoch: optimiser steps per epoch, for epoch-based warm-ups (DKD).
        label_weight: overrides the hard-label weight the strategies agree on.
        label_smoothing: of the hard-label cross-entropy.
        seed: the seed strategies see in their context.
        train_data: ``(x, y)`` training inputs in data space and labels (``-1`` unlabelled), for
            strategies that read the training set when they are built (class centres, for example).
        zoo: loaded plugins (default: everything installed).
        **params: parameters per member, by name (``kd={"temperature": 4}``; hyphens may be
            written as underscores), or, for a single strategy, its parameters directly
            (``temperature=4``).

    Raises:
        ConfigError: an unknown strategy or parameter, a data-free strategy, a teacher with
            another label space, or a plain module without the feature API a strategy needs.
    """

    def __init__(self, student: nn.Module | str, teacher: nn.Module | str | None, strategy: str | list = "kd", *,
                 num_classes: int | None = None, classes: list[str] | None = None,
                 input_shape: tuple[int, ...] | None = None, task: str = "classification",
                 total_steps: int | None = None, steps_per_epoch: int = 1, label_weight: float | None = None,
                 label_smoothing: float = 0.0, seed: int = 0, zoo: Any = None,
                 train_data: tuple[Tensor, Tensor] | None = None, **params: Any) -> None:
        super().__init__()

        zoo = zoo or load_zoo()
        config = make_config({"strategy": _member_specs(strategy, params), "label_weight": label_weight,
                              "optim": {"label_smoothing": label_smoothing}})
        members = resolve_stack(config.strategy, zoo, task)  # resolved once: validated here, instantiated below
        for cls in (m.cls for m in members):
            if not cls.reads_train_data:  # a data source replaces the training data (the data-free strategies)
                raise ConfigError(f"strategy {cls.name!r} is data-free (it synthesises its own training data): "
                                  "engine-only, run it with `kdzoo distill`; Distiller takes logit, feature, "
                                  "init and cross-task strategies")
        student = _as_model(student, "student", num_classes, classes, input_shape, task, zoo)
        classes = list(student.meta.get("classes") or classes or [])
        teacher = None if teacher is None else _as_model(teacher, "teacher", None, classes, input_shape, task, zoo)
        data_shape = tuple(input_shape or student.meta["input_shape"])
        self.budget = None if total_steps is None else int(total_steps)  # None: no stages, open-ended
        self.total_steps, self.steps_per_epoch = int(total_steps or 1), int(steps_per_epoch)
        device = next(student.parameters()).device
        bundle, splits = _training_set(train_data, classes, task)
        self.context = RunContext(config=config, student=student, teacher=teacher, task=task, classes=classes,
                                  data_shape=data_shape, seed=seed, device=device, total_steps=self.total_steps,
                                  steps_per_epoch=self.steps_per_epoch, zoo=zoo, bundle=bundle, splits=splits,
                                  log=_silent)
        if teacher is not None:
            freeze(teacher)
        try:
            stack = instantiate_stack(members, self.context, config.label_weight, zoo)
        except ConfigError as exc:  # a feature strategy refused a plain module: say why, and what works with it
            plain = [(role, m) for role, m in (("student", student), ("teacher", teacher))
                     if isinstance(m, ModuleModel) and not hasattr(m.net, "forward_features")]
            if not plain or "feature" not in str(exc):
                raise
            role, model = plain[0]
            raise ConfigError(f"strategy {'+'.join(s.name for s in config.strategy)} needs the {role}'s features, but "
                              f"{role} {type(model.net).__name__} is a plain module without timm's feature API "
                              "(forward_features, forward_head, forward_intermediates): pass a timm model, a registered "
                              "kdzoo model or a KDModel, or use a strategy on logits alone "
                              f"({', '.join(_logits_only(self.context, zoo))})") from None
        except AttributeError as exc:  # a strategy reached for ctx.bundle/ctx.splits, which are None here
            if bundle is not None or "NoneType" not in str(exc):
                raise
            names = "+".join(spec.name for spec in config.strategy)
            raise ConfigError(f"strategy {names} reads the training set when it is built: "
                              "pass train_data=(x, y) (inputs in data space, labels with -1 for unlabelled)") from None
        if total_steps is None and len(stack.stages()) > 1:
            raise ConfigError(f"strategy {'+'.join(stack.names)} trains in stages "
                              f"({', '.join(s.name for s in stack.stages())}, fractions of the budget): pass total_steps=N")
        _check_feature_api(student, stack.needs().student, "student")
        if teacher is not None:
            _check_feature_api(teacher, stack.needs().teacher, "teacher")
        self.init_report = stack.init_student(self.context)  # what kdzoo distill writes to init_report.json
        self.step_module = StepModule(student, stack, task, label_smoothing)
        self.teacher = teacher
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    # -- what a training loop uses ------------------------------------------------------------------
    @property
    def student(self) -> KDModel:
        return self.step_module.student

    @property
    def stack(self):
        return self.step_module.stack

    @property
    def names(self) -> list[str]:
        """The stack's members in order (``["at", "kd"]``)."""
        return self.stack.names

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """What the student's optimiser trains: the student's parameters, then the strategies' (projectors)."""
        yield from self.student.parameters()
        yield from self.stack.student_optimizer_parameters()

    def train(self, mode: bool = True) -> Distiller:
        """Train or eval mode for the student and strategies; the teacher stays in eval mode."""
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def forward(self, x: Tensor, y: Tensor | None = None, *, step: int | None = None,
                labelled: Tensor | None = None) -> DistillOutput:
        """The loss of one batch.

        Args:
            x: inputs in data space, ``[B, C, H, W]`` in [0, 1] (each model resizes and normalises
                with its own statistics) or ``[B, D]``.
            y: targets ``[B]`` (class ids, ``-1`` unlabelled) or ``[B, T]``; ``None``: no labels.
            step: the optimiser step, 0-based (stages, warm-ups); default: an internal counter that
                advances on every call in training mode (pass it when accumulating gradients).
            labelled: ``[B]`` bool mask of usable labels (default: ``y >= 0`` for class ids).

        Returns:
            The weighted total, the terms, their weights and the student's logits.
        """
        current = int(self.step) if step is None else int(step)
        if labelled is None:
            if y is None:
                labelled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
            else:
                labelled = y >= 0 if y.dim() == 1 else torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        batch = Batch(x=x, y=y, labelled=labelled, index=torch.arange(x.shape[0]))
        if self.budget is None:  # warm-ups still follow the step; there is no last stage to clamp to
            info = step_info(self.stack, current, current + 1, self.steps_per_epoch)
        else:
            info = step_info(self.stack, min(current, self.budget - 1), self.budget, self.steps_per_epoch)
        t_out = None
        if self.teacher is not None:
            t_out = teacher_outputs(self.teacher.outputs, x, self.step_module.needs.teacher)
        total, terms, s_out = self.step_module(batch, t_out, info)
        if self.training and step is None:
            self.step += 1
        return DistillOutput(loss=total, terms={k: v for k, (v, _) in terms.items()},
                             weights={k: w for k, (_, w) in terms.items()}, logits=s_out.logits)


# -- building the models ------------------------------------------------------------------------------
def _member_specs(strategy: str | list, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Strategy specs with ``**params`` given to their members (by name, or all to a single member)."""
    specs = [dict(s) for s in parse_strategy(strategy)]
    names = [str(s.get("name")).rpartition(":")[2] for s in specs]  # kd=... also for a member written DIST:kd
    by_member = {k: v for k, v in params.items() if k.replace("_", "-") in names or k in names}
    loose = {k: v for k, v in params.items() if k not in by_member}
    for spec, name in zip(specs, names):
        for key in (name, name.replace("-", "_")):
            if key in by_member:
                if not isinstance(by_member[key], dict):
                    raise ConfigError(f"{key}={by_member[key]!r}: parameters of strategy {name!r} go in a dict, "
                                      f"e.g. {key}={{...}}")
                spec["params"] = {**spec.get("params", {}), **by_member[key]}
    if loose:
        if len(specs) != 1:
            raise ConfigError(f"parameter {next(iter(loose))!r}: name the member of the stack it is for "
                              f"({', '.join(f'{n}={{...}}' for n in names)})")
        specs[0]["params"] = {**specs[0].get("params", {}), **loose}
    return specs


def _as_model(model: nn.Module | str, role: str, num_classes: int | None, classes: list[str] | None,
              input_shape: tuple[int, ...] | None, task: str, zoo: Any) -> KDModel:
    """A :class:`KDModel` from a KDModel, a plain module, an exported model's path or a model name."""
    import os

    if isinstance(model, KDModel):
        return model
    if isinstance(model, str) and os.path.exists(model):
        return load_model(model, zoo)
    names = list(classes or [str(i) for i in range(num_classes or 0)])
    if isinstance(model, str):
        if not names or input_shape is None:
            raise ConfigError(f"{role} model {model!r} by name needs num_classes= and input_shape= "
                              "(e.g. num_classes=10, input_shape=(1, 28, 28))")

        return create_model(ModelConfig(name=model), num_classes=len(names), data_shape=tuple(input_shape),
                            data_mean=None, data_std=None, classes=names, task=task, zoo=zoo)
    if isinstance(model, nn.Module):
        shape = list(input_shape) if input_shape is not None else [0]
        meta = {"name": type(model).__name__, "kwargs": {}, "source": "module", "num_classes": len(names),
                "input_shape": shape, "mean": None, "std": None, "classes": names, "task": task}
        return ModuleModel(model, meta)
    raise ConfigError(f"{role}: expected an nn.Module, a KDModel, a model name or an exported model's path, "
                      f"got {type(model).__name__}")


def _training_set(train_data: tuple[Tensor, Tensor] | None, classes: list[str], task: str):
    """A :class:`DatasetBundle` and all-train :class:`Splits` of ``train_data`` (``(None, None)`` without it)."""
    if train_data is None:
        return None, None
    import numpy as np

    x, y = train_data
    bundle = DatasetBundle(x, y, task=task, classes=list(classes), name="train_data")
    every = np.arange(len(y))
    known = every if task != "classification" else every[(y >= 0).cpu().numpy()]
    empty = np.array([], dtype=np.int64)
    return bundle, Splits(train=every, val=empty, test=empty, labelled=known, unlabelled=np.setdiff1d(every, known))


def _logits_only(ctx: RunContext, zoo: Any) -> list[str]:
    """The installed strategies that build on ``ctx``'s models and read nothing but their logits (tried one by
    one: capabilities, not families, decide; one that initialises the student from the teacher's weights is
    left out, as it reads more than logits)."""
    fits = []
    for name, entry in sorted(zoo.collect().strategies.items()):
        if name == "ce" or ctx.task not in entry.obj.tasks or not entry.obj.reads_train_data or \
                entry.obj.init_student is not Strategy.init_student:
            continue
        try:
            needs = build_stack([StrategySpec(name)], ctx, zoo).needs()
        except Exception:  # noqa: BLE001 - any refusal (features, training data, a teacher) rules it out
            continue
        if not any(r.features or r.pooled for r in (needs.student, needs.teacher)):
            fits.append(name)
    return fits


def _check_feature_api(model: KDModel, need: Requirement, role: str) -> None:
    """A plain module must offer timm's feature API when a strategy needs more than its logits."""
    wanted = ["forward_intermediates"] if need.features else []
    wanted += ["forward_features", "forward_head"] if need.pooled and not need.features else []
    wanted += ["get_classifier"] if (need.pooled or need.features) and need.logits else []
    missing = [m for m in wanted if not hasattr(model.net, m)]
    if missing:
        what = "intermediate feature maps" if need.features else "pooled features"
        raise ConfigError(f"{role} {type(model.net).__name__} has no {missing[0]} (timm's feature API) but the strategy "
                          f"needs its {what}: pass a timm model, a registered kdzoo model or a KDModel")


def _silent(*args: Any, **kwargs: Any) -> None:
    return None


__all__ = ["DistillOutput", "Distiller", "ModuleModel"]
