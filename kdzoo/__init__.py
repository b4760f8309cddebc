"""kdzoo: a knowledge-distillation strategy zoo with one training engine.

Public API: everything a plugin may use is a name in ``kdzoo.__all__`` (plus the modules
:mod:`kdzoo.losses`, the zoo's loss functions, and :mod:`kdzoo.testing`, the conformance checks
for a plugin's own tests). Any other ``kdzoo.*`` module is internal and may change::

    import kdzoo
    @kdzoo.hookimpl
    def register_strategies(register): register(MyStrategy)

Groups of names:
    contract   ``Strategy``, ``Needs``, ``Requirement``, ``Outputs``, ``Batch``, ``Stage``, ``StepInfo``,
               ``DataSource``, ``NoParams``, ``RunContext``, ``hookimpl``, ``alpha_blend``, ``masked_mean``,
               ``zero_like_graph``.
    parameters ``param`` (a strategy parameter: default, bounds, help), ``bounded`` (bounds only).
    errors     ``KdzooError``, ``ConfigError``, ``NotApplicable``, ``PluginError``.
    runs       ``distill``, ``make_config``, ``load_yaml``, ``RunConfig``, ``ModelConfig``, ``StrategySpec``,
               ``load_zoo``, ``load_model``, ``KDModel``, ``task_teacher``.
    data       ``DatasetBundle``, ``Splits``, ``load_dataset``, ``to_float``, ``eval_chunks``,
               ``read_class_map``, ``validate_class_map``.
    metrics    ``compare``, ``evaluate``, ``embed``.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import losses
from .config import ModelConfig, RunConfig, StrategySpec, bounded, load_yaml, make_config, param
from .context import RunContext
from .errors import ConfigError, KdzooError, NotApplicable, PluginError
from .hookspecs import hookimpl
from .metrics import compare, embed, evaluate
from .plugins import load_zoo
from .strategy import (Batch, DataSource, Needs, NoParams, Outputs, Requirement, Stage, StepInfo, Strategy, alpha_blend,
                       masked_mean, zero_like_graph)

# imported on first use, so that ``import kdzoo`` stays light (no data, model or teacher code)
_LAZY = {
    "DatasetBundle": "data", "Splits": "data", "eval_chunks": "data", "load_dataset": "data", "to_float": "data",
    "KDModel": "models", "read_class_map": "tasks", "validate_class_map": "tasks", "task_teacher": "teacher",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kdzoo' has no attribute {name!r}")


def distill(config, **kwargs):
    """Run a distillation; see :func:`kdzoo.engine.distill`."""
    from .engine import distill as _distill

    return _distill(config, **kwargs)


def load_model(path, zoo=None):
    """Load an exported student or teacher (safetensors + metadata)."""
    from .models import load_model as _load

    return _load(path, zoo or load_zoo())


__all__ = [
    "Batch", "ConfigError", "DataSource", "DatasetBundle", "KDModel", "KdzooError", "ModelConfig", "Needs", "NoParams",
    "NotApplicable", "Outputs", "PluginError", "Requirement", "RunConfig", "RunContext", "Splits", "Stage", "StepInfo",
    "Strategy", "StrategySpec", "alpha_blend", "bounded", "compare", "distill", "embed", "eval_chunks", "evaluate", "hookimpl",
    "load_dataset", "load_model", "load_yaml", "load_zoo", "losses", "make_config", "masked_mean", "param", "read_class_map",
    "task_teacher", "to_float", "validate_class_map", "zero_like_graph",
]
PUBLIC_MODULES = ("kdzoo", "kdzoo.losses", "kdzoo.testing")
