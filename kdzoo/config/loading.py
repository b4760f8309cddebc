"""From YAML and flags to a validated :class:`~kdzoo.config.RunConfig`.

It owns reading a config file safely (:func:`load_yaml`), the strategy spellings (``a+b``, ``{name,
params}``), ``--set KEY=VALUE`` overrides, ``plugins.prefer`` pins, the per-dataset defaults, and
:func:`make_config`, which merges them in that order, builds the sections and runs :func:`validate`
(the static checks that tie fields together, and a run name that stays inside ``--out``).
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any

import yaml

from .. import safe_yaml
from ..contract.errors import ConfigError
from ..contract.params import check_value
from .building import build
from .sections import RUN_NAME_MAX, RunConfig, StrategySpec


def load_yaml(path: str | Path) -> dict:
    """Read a YAML config safely (data only: no tags, nothing imported)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = safe_yaml.load(f)
    except safe_yaml.StrictYAMLError as exc:  # a repeated key (with its line), an alias bomb
        raise ConfigError(f"config file {str(path)!r}: {exc}") from None
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {str(path)!r} is a directory; pass a YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text (a YAML file is expected)") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping, got {type(data).__name__}")
    return data


def parse_strategy(value: Any) -> list[dict]:
    """Normalise ``"a+b"``, ``"kd"``, ``{name, params}`` or a list of them to a list of dicts."""
    if isinstance(value, str):
        return [{"name": part.strip()} for part in value.split("+") if part.strip()]
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        out: list[dict] = []
        for item in value:
            out.extend(parse_strategy(item))
        return out
    raise ConfigError(f"strategy: expected a name, 'a+b', or a list of {{name, params}}, got {value!r}")


def set_dotted(data: dict, dotted: str) -> None:
    """Apply one ``--set key.sub=value`` override in place (the value is parsed as YAML)."""
    if "=" not in dotted:
        raise ConfigError(f"--set {dotted!r}: expected KEY=VALUE, e.g. optim.lr=0.01")
    key, raw = dotted.split("=", 1)
    try:
        value = safe_yaml.load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:  # e.g. a !!python tag: data only, never code
        raise ConfigError(f"--set {dotted!r}: the value is not plain YAML data ({str(exc).splitlines()[0]})") from None
    parts = key.strip().split(".")
    if parts[0] == "strategy" and len(parts) >= 2:
        # strategy.<name or index>.<param>=v sets a member's params
        members = data.setdefault("strategy", [{"name": "ce"}])
        data["strategy"] = members = parse_strategy(members)
        names = [m.get("name", "?") for m in members]
        target = next((m for i, m in enumerate(members)
                       if parts[1] in (m.get("name"), str(m.get("name")).rpartition(":")[2], str(i))), None)
        if target is not None and len(parts) == 2:
            raise ConfigError(f"--set {dotted!r}: name a parameter, e.g. strategy.{parts[1]}.temperature=4")
        close = difflib.get_close_matches(parts[1], names, n=1, cutoff=0.6) if len(parts) >= 3 else []
        if target is None and close:  # strategy.kdd.x: a misspelt member, not a parameter named kdd
            raise ConfigError(f"--set {dotted!r}: the stack has no member {parts[1]!r} ({', '.join(names)}); did you "
                              f"mean {close[0]!r}? e.g. strategy.{close[0]}.{'.'.join(parts[2:])}={raw.strip()}")
        if target is not None:
            param_path = parts[2:]
        elif len(members) == 1:  # a one-member stack: strategy.PARAM means that member's parameter
            target, param_path = members[0], parts[1:]
        elif len(parts) >= 3:  # strategy.X.param with X no member: X was meant as a member's name
            raise ConfigError(f"--set {dotted!r}: the stack has no member {parts[1]!r} ({', '.join(names)}); "
                              f"name one, e.g. strategy.{names[-1]}.{'.'.join(parts[2:])}={raw.strip()}")
        else:
            raise ConfigError(f"--set {dotted!r}: the stack has {len(members)} members ({', '.join(names)}); "
                              f"name one, e.g. strategy.{names[-1]}.{'.'.join(parts[1:])}={raw.strip()}")
        node = target.setdefault("params", {})
        for part in param_path[:-1]:
            node = node.setdefault(part, {})
        node[param_path[-1]] = value
        return
    node = data
    for part in parts[:-1]:
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"--set {dotted!r}: {part!r} is not a section")
        node = nxt
    node[parts[-1]] = value


def pin_strategies(data: dict, plugins: Any) -> None:
    """Apply a config's ``plugins.prefer: {NAME: DIST}``: each bare member ``NAME`` becomes ``DIST:NAME``.

    The pin is folded into the names, so the run records (and a bench keys) the strategy it means.

    Raises:
        ConfigError: ``plugins`` is not ``{prefer: {strategy name: distribution}}``.
    """
    if plugins is None:
        return
    if not isinstance(plugins, dict) or set(plugins) - {"prefer"}:
        raise ConfigError(f"plugins: expected {{prefer: {{STRATEGY: DISTRIBUTION}}}}, got {plugins!r}")
    prefer = plugins.get("prefer") or {}
    if not isinstance(prefer, dict) or not all(isinstance(k, str) and isinstance(v, str) and v and ":" not in k
                                               for k, v in prefer.items()):
        raise ConfigError(f"plugins.prefer: expected {{STRATEGY: DISTRIBUTION}}, e.g. {{kd: kdzoo-logit}}, "
                          f"got {prefer!r}")
    members = data.get("strategy", [{"name": StrategySpec.name}])
    data["strategy"] = [dict(m, name=f"{prefer[m['name']]}:{m['name']}") if m.get("name") in prefer else m
                        for m in members]


# Defaults per dataset, under whatever a config sets. diabetes: 442 tabular samples, ~3 steps an epoch;
# the global defaults (LeNet-5, which takes images; 10 epochs = 30 steps) predict the training mean (test MSE
# ~5,300). An MLP for 150 epochs (~450 steps; its teacher the same) reaches ~3,400, below scikit-learn's
# LinearRegression (3,467).
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "diabetes": {"student": {"name": "mlp"}, "train": {"epochs": 150}, "teacher_train": {"epochs": 150}},
}


def _with_defaults(data: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``data`` with every key of ``defaults`` it does not set (nested sections merged key by key)."""
    out = dict(data)
    for key, value in defaults.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _with_defaults(out[key], value)
        elif key not in out:
            out[key] = value
    return out


def make_config(data: dict | None = None, overrides: list[str] = ()) -> RunConfig:
    """Build a validated :class:`RunConfig` from plain data plus dotted overrides (over the dataset's
    :data:`DATASET_DEFAULTS`, over the dataclass defaults)."""
    data = dict(data or {})
    for item in overrides:
        set_dotted(data, item)
    if "strategy" in data:
        data["strategy"] = parse_strategy(data["strategy"])
    if "plugins" in data:
        pin_strategies(data, data.pop("plugins"))
    for key in ("student", "teacher"):
        if isinstance(data.get(key), str):
            data[key] = {"name": data[key]}
    if isinstance(data.get("data"), str):
        data["data"] = {"name": data["data"]}
    name = data.get("data", {}).get("name") if isinstance(data.get("data"), dict) else None
    if isinstance(name, str) and name.partition(":")[0] in DATASET_DEFAULTS:
        defaults = DATASET_DEFAULTS[name.partition(":")[0]]
        if isinstance(data.get("train"), dict) and data["train"].get("steps") is not None:
            defaults = {k: v for k, v in defaults.items() if k != "train"}  # a step budget replaces the epochs
        if isinstance(data.get("student"), dict) and data["student"].get("checkpoint"):
            defaults = {k: v for k, v in defaults.items() if k != "student"}  # the weights file names the model
        if data.get("teacher") is None:
            defaults = {k: v for k, v in defaults.items() if k != "teacher_train"}
        data = _with_defaults(data, defaults)
    config = build(RunConfig, data)
    validate(config)
    return config


def _check_fields(obj: Any, path: str) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            _check_fields(value, f"{path}{f.name}.")
        else:
            check_value(value, f.metadata.get("bounds"), f"{path}{f.name}")


def validate(config: RunConfig) -> RunConfig:
    """Static checks of a whole config, before anything is loaded: every number finite and in
    range, and the rules that tie fields together. Checks that need the data (labels per class
    against class sizes) run right after loading, before any teacher or run directory.

    Raises:
        ConfigError: one line naming the key, the bad value and what is valid.
    """
    _check_fields(config, "")
    for spec in config.strategy:
        for key, value in (spec.params or {}).items():
            check_value(value, None, f"strategy.{spec.name}.{key}")
    if not config.strategy:
        raise ConfigError("strategy: at least one strategy is needed, e.g. 'ce' or 'kd'")
    d, t = config.data, config.train
    if d.val_fraction + d.test_fraction >= 1:
        raise ConfigError(f"data.val_fraction + data.test_fraction must be < 1 (something must be left to train on), "
                          f"got {d.val_fraction} + {d.test_fraction}")
    if len(d.crop_scale) != 2 or d.crop_scale[0] > d.crop_scale[1]:
        raise ConfigError(f"data.crop_scale must be [min, max] with min <= max, got {d.crop_scale}")
    if d.image_size is not None and len(d.image_size) not in (1, 2):
        raise ConfigError(f"data.image_size must be [H, W] or [S], got {d.image_size}")
    if not t.seeds:
        raise ConfigError("train.seeds is empty; give at least one seed, e.g. --seeds 0 or --seeds 0,1,2")
    repeated = sorted({s for s in t.seeds if t.seeds.count(s) > 1})
    if repeated:
        raise ConfigError(f"train.seeds repeats {', '.join(map(str, repeated))} (got {t.seeds}); each seed is one run, "
                          "give distinct seeds")
    if t.steps is None and t.epochs is None:
        raise ConfigError("set train.steps or train.epochs (a positive budget)")
    if config.teacher_train.finetune and (config.teacher is None or not config.teacher.checkpoint):
        raise ConfigError("teacher_train.finetune fine-tunes teacher.checkpoint, but the teacher has no checkpoint; "
                          "set teacher.checkpoint (or --teacher FILE), or drop teacher_train.finetune")
    if config.teacher_train.finetune and config.teacher_train.random_init:
        raise ConfigError("teacher_train.finetune and teacher_train.random_init exclude each other "
                          "(fine-tune a checkpoint, or keep a random teacher); drop one")
    for name in (config.name,) if config.name is not None else ():
        check_run_name(name)
    return config


def check_run_name(name: str) -> str:
    """A run name is one folder name inside ``--out``, never a path that could leave it."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ConfigError(f"--name {name!r} must be a plain folder name (no '/', not '.' or '..'); "
                          "use --out to choose the parent folder")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ConfigError(f"--name {name!r} holds a control character (a newline or tab?); use a plain folder name")
    if len(name.encode("utf-8", "surrogateescape")) > RUN_NAME_MAX:
        raise ConfigError(f"--name is {len(name.encode('utf-8', 'surrogateescape'))} bytes long; a run name may have "
                          f"at most {RUN_NAME_MAX} (got {name[:40]!r}...)")
    return name
