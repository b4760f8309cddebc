"""Plain data to typed config and back: every key and type checked on the way in, hashable data out.

:func:`build` turns a dict into a section dataclass (unknown keys and wrong types are one line naming
the key and the closest valid ones), :func:`check_defaults` holds a dataclass's defaults to the same
rules (a strategy's ``Config``), and :func:`to_dict`, :func:`key_dict` and :func:`canonical` give the
plain data a run directory records and a cell key hashes.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from typing import Any, Literal, Union

from ..contract.errors import ConfigError, unknown
from ..contract.params import check_value


def build(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from ``data`` (a dict), validating every key and type.

    Raises:
        ConfigError: naming the dotted key, the bad value and the valid choices.
    """
    if dataclasses.is_dataclass(data) and isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            raise unknown("config key", f"{path}{key}", [f"{path}{n}" for n in names])
    kwargs = {key: _coerce(hints[key], value, f"{path}{key}") for key, value in data.items()}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in kwargs.items():
        if not dataclasses.is_dataclass(value):
            check_value(value, fields[key].metadata.get("bounds"), f"{path}{key}")
    return cls(**kwargs)


def check_defaults(cls: type, path: str = "") -> None:
    """Check that every default of dataclass ``cls`` is what :func:`build` would accept for its field.

    A default is held to the same rules as a value from YAML or the CLI: its type (a default that
    would be converted, e.g. the string ``"0.5"`` for a ``float``, is refused too) and its bounds.

    Raises:
        ConfigError: naming the field, the bad default and the expected type.
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            continue
        if dataclasses.is_dataclass(value):
            check_defaults(type(value), f"{path}{f.name}.")
            continue
        try:
            coerced = _coerce(hints[f.name], value, f"{path}{f.name}")
        except ConfigError:
            coerced = None
        if coerced is None and value is not None or (
                type(coerced) is not type(value) and not (isinstance(coerced, float) and type(value) is int)):
            raise ConfigError(f"{path}{f.name}: default {value!r} is a {type(value).__name__}, "
                              f"not a {_type_name(hints[f.name])}")
        check_value(value, f.metadata.get("bounds"), f"{path}{f.name}")


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{path}: bad value {value!r}")
    if origin is Literal:
        if isinstance(value, bool) and "off" in args:  # YAML 1.1 reads on/off as booleans
            value = "on" if value else "off"
        if value not in args:
            raise unknown(f"value for {path}", value, [str(a) for a in args])
        return value
    if origin is list:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [v for v in str(value).split(",") if v != ""]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        return [_coerce(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, f"{path}.")
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str) and not value.lstrip("-").isdigit()):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: expected a number, got {value!r}") from None
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return str(value)
    return value


def to_dict(obj: Any) -> Any:
    """Plain-data form of a config (for YAML, hashing and the run directory)."""
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


def key_dict(obj: Any) -> Any:
    """:func:`to_dict` for hashing: like it, minus :func:`switch` fields at their default."""
    if not dataclasses.is_dataclass(obj):
        if isinstance(obj, (list, tuple)):
            return [key_dict(v) for v in obj]
        return to_dict(obj)
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("keyed_when_set") and value == f.default:
            continue
        out[f.name] = key_dict(value) if dataclasses.is_dataclass(value) or isinstance(value, (list, tuple)) \
            else copy.deepcopy(value)
    return out


def canonical(value: Any) -> Any:
    """``value`` with numbers normalised, for hashing: ``15`` and ``15.0`` are one key."""
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
