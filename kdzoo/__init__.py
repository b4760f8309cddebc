"""kdzoo: a knowledge-distillation strategy zoo with one training engine.

Three doors, each with its own ``__all__``; any other ``kdzoo.*`` module is internal and may change:

- :mod:`kdzoo` (this module), for users: run a distillation, distil in your own loop, build and read
  configs, load an exported model, compare two runs, the errors, the version::

      import kdzoo
      result = kdzoo.distill("run.yaml")  # or a dict, or a RunConfig

- :mod:`kdzoo.plugin`, for plugin authors: the strategy contract, ``hookimpl``, ``param``,
  ``alpha_blend``, the model, data and logger types a plugin touches.
- the tool modules :mod:`kdzoo.losses` (the zoo's loss functions), :mod:`kdzoo.data` (datasets,
  splits and tensor helpers) and :mod:`kdzoo.testing` (the conformance checks for a plugin's tests).

Groups of names here:
    runs       ``distill``, ``make_config``, ``load_yaml``, ``RunConfig``, ``ModelConfig``, ``StrategySpec``,
               ``load_zoo``, ``load_model``, ``version``.
    own loop   ``Distiller``, ``DistillOutput`` (any non-data-free stack as one ``nn.Module``).
    results    ``compare`` (the paired verdict on two runs' per-seed values).
    errors     ``KdzooError``, ``ConfigError``, ``NotApplicable``, ``PluginError``.

The names that lived here before 0.2 (``Strategy``, ``param``, ``hookimpl``, ``to_float``, ...) still
work until 0.3, with a ``DeprecationWarning`` that names their new door. Importing ``kdzoo`` does not
import torch: the names that need it are imported on first use, so ``kdzoo --help`` and the listings
start fast.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from .config import ModelConfig, RunConfig, StrategySpec, load_yaml, make_config
from .contract.errors import ConfigError, KdzooError, NotApplicable, PluginError
from .versions import kdzoo_version
from .zoo.plugins import load_zoo

# name -> the submodule that defines it (imported on first access; each needs torch)
_LAZY = {"compare": "bench.metrics", "Distiller": "distiller", "DistillOutput": "distiller"}

# the modules reachable as attributes of ``kdzoo`` (imported on first access)
_MODULES = ("data", "losses", "plugin", "testing")

# names that left this door in 0.2 -> their new door; they keep working, with a warning, until 0.3
_MOVED = {
    **dict.fromkeys(["Batch", "DataSource", "KDModel", "Needs", "NoParams", "Outputs", "Requirement", "RunContext",
                     "Stage", "StagedNet", "StepInfo", "Strategy", "alpha_blend", "bounded", "embed", "evaluate",
                     "hookimpl", "masked_mean", "param", "task_teacher", "zero_like_graph", "DatasetBundle",
                     "Splits"], "kdzoo.plugin"),
    **dict.fromkeys(["eval_chunks", "load_dataset", "read_class_map", "to_float", "validate_class_map"], "kdzoo.data"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _MOVED:  # not cached, so every caller hears it
        home = _MOVED[name]
        warnings.warn(f"kdzoo.{name} moved to {home}.{name}; import it from {home} (the old name goes in kdzoo 0.3)",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(home), name)
    raise AttributeError(f"module 'kdzoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_MODULES))


def distill(config=None, **kwargs):
    """Run a distillation; see :func:`kdzoo.train.runs.distill`.

    Besides config data, takes your own objects: ``teacher=``/``student=`` ``nn.Module``s and
    ``train=``/``val=``/``test=`` torch ``Dataset``s (or a ``DataLoader`` for train); see
    docs/own-models-and-data.md.
    """
    from .train.runs import distill as _distill  # lazy: start-up cost (torch)

    return _distill(config, **kwargs)


def load_model(path, zoo=None):
    """Load an exported student or teacher (safetensors + metadata)."""
    from .models.wrapper import load_model as _load  # lazy: start-up cost (torch)

    return _load(path, zoo or load_zoo())


def version() -> str:
    """The installed kdzoo distribution's version (``0+unknown`` from a source tree never installed)."""
    return kdzoo_version()


__all__ = [
    "ConfigError", "DistillOutput", "Distiller", "KdzooError", "ModelConfig", "NotApplicable", "PluginError",
    "RunConfig", "StrategySpec", "compare", "distill", "load_model", "load_yaml", "load_zoo", "make_config", "version",
]
PUBLIC_MODULES = ("kdzoo", "kdzoo.plugin", "kdzoo.data", "kdzoo.losses", "kdzoo.testing")
