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
               ``load_zoo``, ``load_model``, ``KDModel``, ``task_teacher``, ``version``.
    models     ``StagedNet`` (timm's feature API for a plugin's own staged networks).
    own loop   ``Distiller``, ``DistillOutput`` (any non-data-free stack as one ``nn.Module``), ``losses``.
    data       ``DatasetBundle``, ``Splits``, ``load_dataset``, ``to_float``, ``eval_chunks``,
               ``read_class_map``, ``validate_class_map``.
    metrics    ``compare``, ``evaluate``, ``embed``.

Importing ``kdzoo`` does not import torch: the names that need it are imported on first use, so
``kdzoo --help`` and the listings start fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from .config import ModelConfig, RunConfig, StrategySpec, bounded, load_yaml, make_config, param
from .contract.errors import ConfigError, KdzooError, NotApplicable, PluginError
from .contract.hookspecs import hookimpl
from .zoo.plugins import load_zoo

# name -> the submodule that defines it (imported on first access; each needs torch)
_LAZY = {
    **dict.fromkeys(["Batch", "DataSource", "Needs", "NoParams", "Outputs", "Requirement", "Stage", "StepInfo",
                     "Strategy", "alpha_blend", "masked_mean", "zero_like_graph"], "contract.strategy"),
    "RunContext": "contract.context", "compare": "bench.metrics", "embed": "bench.metrics", "evaluate": "bench.metrics",
    "Distiller": "distiller", "DistillOutput": "distiller",
    "DatasetBundle": "data", "Splits": "data", "eval_chunks": "data", "load_dataset": "data", "to_float": "data",
    "KDModel": "models.wrapper", "StagedNet": "models.simple",
    "read_class_map": "data.relabel", "validate_class_map": "data.relabel",
    "task_teacher": "train.runs",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in ("losses", "testing"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'kdzoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"losses", "testing"})


def distill(config=None, **kwargs):
    """Run a distillation; see :func:`kdzoo.train.runs.distill`.

    Besides config data, takes your own objects: ``teacher=``/``student=`` ``nn.Module``s and
    ``train=``/``val=``/``test=`` torch ``Dataset``s (or a ``DataLoader`` for train); see
    docs/own-models-and-data.md.
    """
    from .train.runs import distill as _distill

    return _distill(config, **kwargs)


def load_model(path, zoo=None):
    """Load an exported student or teacher (safetensors + metadata)."""
    from .models.wrapper import load_model as _load

    return _load(path, zoo or load_zoo())


def version() -> str:
    """The installed kdzoo distribution's version."""
    from .zoo.plugins import _version

    return _version()


__all__ = [
    "Batch", "ConfigError", "DataSource", "DatasetBundle", "DistillOutput", "Distiller", "KDModel", "KdzooError",
    "ModelConfig", "Needs", "NoParams", "NotApplicable", "Outputs", "PluginError", "Requirement", "RunConfig",
    "RunContext", "Splits", "Stage", "StagedNet", "StepInfo", "Strategy", "StrategySpec", "alpha_blend", "bounded",
    "compare", "distill", "embed", "eval_chunks", "evaluate", "hookimpl", "load_dataset", "load_model", "load_yaml", "load_zoo",
    "losses", "make_config", "masked_mean", "param", "read_class_map", "task_teacher", "to_float",
    "validate_class_map", "version", "zero_like_graph",
]
PUBLIC_MODULES = ("kdzoo", "kdzoo.losses", "kdzoo.testing")
