"""Preparing a run: its strategy stack resolved, its checks before any data, its data, splits and step budget.

This module owns the work a run does once, before its first seed, and the one object that carries it
down: :class:`PreparedRun` (the config, the resolved stack members, the dataset and its splits, steps
per epoch and the total step budget), which the run driver, each seed, the teacher's label-space
check, the effective config and the student's statistics read instead of working any of it out again.
:func:`check_run` resolves the stack (:func:`kdzoo.zoo.stack.resolve_stack`) with the cheap checks of
the models, weight files and loggers; :func:`prepare` then loads and splits the data.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import torch

from ..config import RunConfig, data_options
from ..contract.errors import ConfigError
from ..data import ALIASES, DatasetBundle, Splits, channel_stats, load_dataset, make_splits, steps_per_epoch
from ..data.user import user_bundle
from ..loggers import check_logger_names
from ..models.weights import check_weight_files
from ..models.wrapper import check_student_weights
from ..zoo.stack import Member, check_task, resolve_stack


@dataclass(frozen=True)
class PreparedRun:
    """A run worked out once: what every seed, and everything around the seeds, takes.

    Attributes:
        config: the run config.
        zoo: the loaded plugins.
        members: the strategy stack, resolved and validated (:class:`kdzoo.zoo.stack.Member`).
        bundle: the dataset (the student's).
        splits: its train/val/test (and labelled/unlabelled) indices.
        steps_per_epoch: optimiser steps per pass over the training split.
        total_steps: the optimiser-step budget of one seed.
        objects: the caller's own modules and datasets (:class:`kdzoo.user.UserObjects`), if any.
    """

    config: RunConfig
    zoo: Any
    members: tuple[Member, ...]
    bundle: DatasetBundle
    splits: Splits
    steps_per_epoch: int
    total_steps: int
    objects: Any = None

    @property
    def task(self) -> str:
        return self.bundle.task

    @property
    def reads_train_data(self) -> bool:
        """Whether every member learns from the training data (``False``: a data-free member synthesises it)."""
        return all(m.cls.reads_train_data for m in self.members)


def prepared_run(config: RunConfig, zoo: Any, bundle: DatasetBundle, splits: Splits, *,
                 members: tuple[Member, ...] | None = None, objects: Any = None) -> PreparedRun:
    """A :class:`PreparedRun` of data already loaded, for a run of its own (a teacher trained for the cache, a
    tuning trial): resolves ``config``'s stack unless ``members`` holds it, and works out the step budget."""
    if members is None:
        members = resolve_stack(config.strategy, zoo, bundle.task)
    else:  # resolved before the data was loaded, when its task came from the dataset's registration
        check_task(members, bundle.task)
    spe = steps_per_epoch(splits, config.data)
    return PreparedRun(config, zoo, members, bundle, splits, spe, total_steps(config, spe), objects)


def total_steps(config: RunConfig, spe: int) -> int:
    t = config.train
    if t.steps is not None:
        if t.steps < 1:
            raise ConfigError(f"train.steps must be >= 1, got {t.steps}")
        return t.steps
    if t.epochs is None or t.epochs <= 0:
        raise ConfigError("set train.steps or a positive train.epochs")
    return max(1, round(t.epochs * spe))


def check_model_name(role: str, name: str, zoo: Any) -> None:
    """A registered model or a timm architecture; else one line with the closest names of both."""
    if zoo.model(name) is not None:
        return
    import timm  # only for names kdzoo does not register: a run of registered models never imports it

    if timm.is_model(name):
        return
    registered = sorted(zoo.collect().models)
    close = difflib.get_close_matches(name, registered + timm.list_models(), n=4, cutoff=0.6)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    raise ConfigError(f"unknown {role} model {name!r}; {hint}valid: {', '.join(registered)} or any name in "
                      "timm.list_models()")


def prepare(config: RunConfig, zoo: Any, objects: Any = None) -> PreparedRun:
    """Validate what can be validated cheaply (the stack resolved once, here), then load data and split it.

    With ``objects`` (:class:`kdzoo.user.UserObjects`), the caller's datasets replace a named
    dataset and the caller's modules replace named models.
    """
    members = check_run(config, zoo, objects)
    if objects is not None and objects.has_data:
        if config.data.labels_per_class is not None:
            raise ConfigError("data.labels_per_class applies to named datasets; pass the labelled subset as train")
        bundle, splits = user_bundle(objects, config.data)
        check_classes(bundle, "your train data")
        return prepared_run(config, zoo, bundle, splits, members=members, objects=objects)
    bundle = load_dataset(config.data.name, config.data.root, zoo, **data_options(config))
    check_classes(bundle, f"data {config.data.name!r}")
    check_student_weights(config, bundle, zoo)
    return prepared_run(config, zoo, bundle, make_splits(bundle, config.data), members=members)


def check_run(config: RunConfig, zoo: Any, objects: Any = None) -> tuple[Member, ...]:
    """What :func:`prepare` checks before it loads any data: strategies, models, weight files, loggers.

    Returns:
        The stack's members, resolved for the data's task.
    """
    user_data = objects is not None and objects.has_data
    name = config.data.name.partition(":")[0]
    task = "classification" if user_data else zoo.dataset(ALIASES.get(name, name)).meta.get("task")
    members = resolve_stack(config.strategy, zoo, task)
    for m in members:
        if m.cls.requires_teacher and config.teacher is None:
            raise ConfigError(f"strategy {m.name!r} needs a teacher; pass --teacher (a model name or weights file)")
    for role, model in (("student", config.student), ("teacher", config.teacher)):
        given = objects is not None and getattr(objects, role) is not None
        if model is not None and not model.checkpoint and not given:  # a weights file names its own model
            check_model_name(role, model.name, zoo)
    check_weight_files(config, members)
    if config.runtime.loggers:
        check_logger_names(config.runtime.loggers, zoo)
    return members


def check_classes(bundle: DatasetBundle, what: str) -> None:
    """A classification task needs two classes with samples: with one, every prediction is right."""
    if bundle.task != "classification":
        return
    labels = torch.as_tensor(bundle.y)
    present = torch.unique(labels).numel() if labels.numel() else 0
    if len(bundle.classes) < 2 or present < 2:
        names = ", ".join(map(str, bundle.classes[:5])) or "none"
        raise ConfigError(f"{what} has {present} class(es) with samples ({names}); classification needs at least 2")


def student_stats(run: PreparedRun, teacher) -> tuple[Any, Any]:
    """The student's normalisation: the train split's channel statistics, or the teacher's when a member
    does not read training data (data-free)."""
    if teacher is not None and not run.reads_train_data:
        return teacher.meta.get("mean"), teacher.meta.get("std")
    return channel_stats(run.bundle, run.splits.train)


__all__ = ["PreparedRun", "check_classes", "check_model_name", "check_run", "prepare", "prepared_run", "student_stats",
           "total_steps"]
