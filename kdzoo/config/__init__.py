"""Typed, validated run configuration: YAML (loaded safely) or flags, with dotted overrides.

Every section is a dataclass; :func:`build` turns plain dicts into them, rejecting unknown keys
and values of the wrong type with one line that names the bad key and the closest valid ones.
Nothing named in a config is ever imported.

The package's parts: :mod:`~kdzoo.config.sections` (the dataclasses), :mod:`~kdzoo.config.building`
(plain data to dataclasses and back) and :mod:`~kdzoo.config.loading` (YAML, ``--set``, defaults and
validation into :func:`make_config`). Every name is importable from ``kdzoo.config``, as before the split.
"""

from __future__ import annotations

from ..contract.params import (  # noqa: F401 - re-exported: the names config held before they moved to the contract
    _range_text, bounded, check_value, param, param_help, param_range)
from .building import _coerce, _type_name, build, canonical, check_defaults, key_dict, to_dict  # noqa: F401
from .loading import (DATASET_DEFAULTS, check_run_name, load_yaml, make_config, parse_strategy,  # noqa: F401
                      pin_strategies, set_dotted, validate)
from .sections import (MAX_THREADS, RUN_NAME_MAX, SEED_MAX, DataConfig, ModelConfig, OptimConfig,  # noqa: F401
                       RunConfig, RuntimeConfig, StrategySpec, TeacherTrainConfig, TrainConfig,
                       data_options, switch)
