"""kdzoo: a knowledge-distillation strategy zoo with one training engine.

Public API (what plugins may import)::

    import kdzoo
    @kdzoo.hookimpl
    def register_strategies(register): register(MyStrategy)

The zoo's loss functions, plain functions on tensors for strategies and for any training loop, are
:mod:`kdzoo.losses` (``from kdzoo import losses``).
"""

from __future__ import annotations

from . import losses
from .config import ModelConfig, RunConfig, StrategySpec, make_config
from .context import RunContext
from .errors import ConfigError, KdzooError, PluginError
from .hookspecs import hookimpl
from .metrics import compare
from .plugins import load_zoo
from .strategy import Batch, DataSource, Needs, NoParams, Outputs, Requirement, Stage, StepInfo, Strategy, masked_mean


def distill(config=None, **kwargs):
    """Run a distillation; see :func:`kdzoo.engine.distill`.

    Besides config data, takes your own objects: ``teacher=``/``student=`` ``nn.Module``s and
    ``train=``/``val=``/``test=`` torch ``Dataset``s (or a ``DataLoader`` for train); see
    docs/own-models-and-data.md.
    """
    from .engine import distill as _distill

    return _distill(config, **kwargs)


def load_model(path, zoo=None):
    """Load an exported student or teacher (safetensors + metadata)."""
    from .models import load_model as _load

    return _load(path, zoo or load_zoo())


__all__ = [
    "Batch", "ConfigError", "DataSource", "KdzooError", "ModelConfig", "Needs", "NoParams", "Outputs", "PluginError",
    "Requirement", "RunConfig", "RunContext", "Stage", "StepInfo", "Strategy", "StrategySpec", "compare", "distill",
    "hookimpl", "load_model", "load_zoo", "losses", "make_config", "masked_mean",
]
