"""kdzoo: a knowledge-distillation strategy zoo with one training engine.

Public API (what plugins may import)::

    import kdzoo
    @kdzoo.hookimpl
    def register_strategies(register): register(MyStrategy)

The zoo's loss functions, plain functions on tensors for strategies and for any training loop, are
:mod:`kdzoo.losses` (``from kdzoo import losses``); :class:`kdzoo.Distiller` wraps any strategy stack as one
``nn.Module`` for your own loop.

Importing ``kdzoo`` does not import torch: the names that need it (``Strategy``, ``losses``,
``Distiller``, ...) are imported on first use, so ``kdzoo --help`` and the listings start fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from .config import ModelConfig, RunConfig, StrategySpec, make_config
from .errors import ConfigError, KdzooError, PluginError
from .hookspecs import hookimpl
from .plugins import load_zoo

# name -> the submodule that defines it (imported on first access; each needs torch)
_LAZY = {
    "Batch": "strategy", "DataSource": "strategy", "Needs": "strategy", "NoParams": "strategy", "Outputs": "strategy",
    "Requirement": "strategy", "Stage": "strategy", "StepInfo": "strategy", "Strategy": "strategy",
    "masked_mean": "strategy", "RunContext": "context", "compare": "metrics", "Distiller": "distiller",
    "DistillOutput": "distiller",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if name == "losses":
        return importlib.import_module(".losses", __name__)
    raise AttributeError(f"module 'kdzoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"losses"})


def distill(config, **kwargs):
    """Run a distillation; see :func:`kdzoo.engine.distill`."""
    from .engine import distill as _distill

    return _distill(config, **kwargs)


def load_model(path, zoo=None):
    """Load an exported student or teacher (safetensors + metadata)."""
    from .models import load_model as _load

    return _load(path, zoo or load_zoo())


def version() -> str:
    """The installed kdzoo distribution's version."""
    from .plugins import _version

    return _version()


__all__ = [
    "Batch", "ConfigError", "DataSource", "DistillOutput", "Distiller", "KdzooError", "ModelConfig", "Needs", "NoParams",
    "Outputs", "PluginError", "Requirement", "RunConfig", "RunContext", "Stage", "StepInfo", "Strategy", "StrategySpec",
    "compare", "distill", "hookimpl", "load_model", "load_zoo", "losses", "make_config", "masked_mean", "version",
]
