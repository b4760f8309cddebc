"""The door for plugin authors: every name a strategy, model, dataset or logger plugin is built from.

A plugin imports from here (and from the tool modules :mod:`kdzoo.losses`, :mod:`kdzoo.data`,
:mod:`kdzoo.testing`); users who only run distillations need the smaller :mod:`kdzoo`::

    from kdzoo.plugin import Needs, Strategy, alpha_blend, hookimpl, param

    class MyStrategy(Strategy): ...

    @hookimpl
    def register_strategies(register):
        register(MyStrategy)

Groups of names:
    contract   ``Strategy``, ``Needs``, ``Requirement``, ``Outputs``, ``Batch``, ``Stage``, ``StepInfo``,
               ``DataSource``, ``NoParams``, ``RunContext``, ``hookimpl``.
    parameters ``param`` (a strategy parameter: default, bounds, help), ``bounded`` (bounds only).
    helpers    ``alpha_blend`` (term weights from one alpha), ``masked_mean``, ``zero_like_graph``.
    errors     ``KdzooError``, ``ConfigError``, ``NotApplicable``, ``PluginError``.
    models     ``KDModel`` (the wrapper every strategy sees), ``StagedNet`` (timm's feature API for a
               plugin's own staged networks).
    data       ``DatasetBundle``, ``Splits``.
    loggers    ``RunLogger`` (what a tracker implements), ``LoggerContext`` (what its factory gets).
    runs       ``load_zoo``, ``task_teacher`` (a task's cached teacher, for a plugin's own command),
               ``evaluate``, ``embed`` (a model's metrics and embeddings on a split).

Like :mod:`kdzoo`, importing this module does not import torch: the names that need it are imported
on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .contract.errors import ConfigError, KdzooError, NotApplicable, PluginError
from .contract.hookspecs import hookimpl
from .contract.params import bounded, param
from .zoo.plugins import load_zoo

# name -> the module that defines it (imported on first access; most need torch)
_LAZY = {
    **dict.fromkeys(["Batch", "DataSource", "Needs", "NoParams", "Outputs", "Requirement", "Stage", "StepInfo",
                     "Strategy", "alpha_blend", "masked_mean", "zero_like_graph"], "contract.strategy"),
    "RunContext": "contract.context",
    "KDModel": "models.wrapper", "StagedNet": "models.simple",
    "DatasetBundle": "data", "Splits": "data",
    "LoggerContext": "loggers", "RunLogger": "loggers",
    "task_teacher": "train.runs",
    "evaluate": "models.evaluate", "embed": "models.evaluate",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"kdzoo.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kdzoo.plugin' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Batch", "ConfigError", "DataSource", "DatasetBundle", "KDModel", "KdzooError", "LoggerContext", "Needs",
    "NoParams", "NotApplicable", "Outputs", "PluginError", "Requirement", "RunContext", "RunLogger", "Splits",
    "Stage", "StagedNet", "StepInfo", "Strategy", "alpha_blend", "bounded", "embed", "evaluate", "hookimpl",
    "load_zoo", "masked_mean", "param", "task_teacher", "zero_like_graph",
]
