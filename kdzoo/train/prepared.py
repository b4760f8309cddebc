"""Preparing a run: what is checked before any data is loaded, the data and its splits, the step budget.

This module owns the work a run does once, before its first seed: the cheap checks of its strategies,
models, weight files and loggers (:func:`check_run`), loading the dataset (or the caller's own) and
splitting it (:func:`prepare`), the optimiser-step budget (:func:`total_steps`) and the student's
normalisation statistics (:func:`student_stats`).
"""

from __future__ import annotations

import difflib
from typing import Any

import torch

from ..config import RunConfig, data_options
from ..contract.errors import ConfigError
from ..data import ALIASES, DatasetBundle, Splits, channel_stats, load_dataset, make_splits
from ..loggers import check_logger_names
from ..models.weights import check_weight_files
from ..models.wrapper import check_student_weights
from ..user import user_bundle
from ..zoo.stack import check_specs


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


def prepare(config: RunConfig, zoo: Any, objects: Any = None) -> tuple[DatasetBundle, Splits]:
    """Validate what can be validated cheaply, then load data and split it.

    With ``objects`` (:class:`kdzoo.user.UserObjects`), the caller's datasets replace a named
    dataset and the caller's modules replace named models.
    """
    check_run(config, zoo, objects)
    if objects is not None and objects.has_data:
        if config.data.labels_per_class is not None:
            raise ConfigError("data.labels_per_class applies to named datasets; pass the labelled subset as train")
        bundle, splits = user_bundle(objects, config.data)
        check_classes(bundle, "your train data")
        return bundle, splits
    bundle = load_dataset(config.data.name, config.data.root, zoo, **data_options(config))
    check_classes(bundle, f"data {config.data.name!r}")
    check_student_weights(config, bundle, zoo)
    return bundle, make_splits(bundle, config.data)


def check_run(config: RunConfig, zoo: Any, objects: Any = None) -> None:
    """What :func:`prepare` checks before it loads any data: strategies, models, weight files, loggers."""
    user_data = objects is not None and objects.has_data
    name = config.data.name.partition(":")[0]
    task = "classification" if user_data else zoo.dataset(ALIASES.get(name, name)).meta.get("task")
    for cls, _ in check_specs(config.strategy, zoo, task):
        if cls.requires_teacher and config.teacher is None:
            raise ConfigError(f"strategy {cls.name!r} needs a teacher; pass --teacher (a model name or weights file)")
    for role, model in (("student", config.student), ("teacher", config.teacher)):
        given = objects is not None and getattr(objects, role) is not None
        if model is not None and not model.checkpoint and not given:  # a weights file names its own model
            check_model_name(role, model.name, zoo)
    check_weight_files(config, zoo)
    if config.runtime.loggers:
        check_logger_names(config.runtime.loggers, zoo)


def check_classes(bundle: DatasetBundle, what: str) -> None:
    """A classification task needs two classes with samples: with one, every prediction is right."""
    if bundle.task != "classification":
        return
    labels = torch.as_tensor(bundle.y)
    present = torch.unique(labels).numel() if labels.numel() else 0
    if len(bundle.classes) < 2 or present < 2:
        names = ", ".join(map(str, bundle.classes[:5])) or "none"
        raise ConfigError(f"{what} has {present} class(es) with samples ({names}); classification needs at least 2")


def student_stats(config: RunConfig, zoo: Any, bundle: DatasetBundle, splits: Splits, teacher) -> tuple[Any, Any]:
    """The student's normalisation: the train split's channel statistics, or the teacher's when no member
    reads training data (data-free)."""
    if teacher is not None and any(not cls.reads_train_data for cls, _ in check_specs(config.strategy, zoo)):
        return teacher.meta.get("mean"), teacher.meta.get("std")
    return channel_stats(bundle, splits.train)


__all__ = ["check_classes", "check_model_name", "check_run", "prepare", "student_stats", "total_steps"]
