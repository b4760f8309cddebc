"""The search space of a ``kdzoo tune`` study: the learning rate plus a strategy stack's declared parameters.

A parameter is searched by default when it declares ``kdzoo.plugin.param(..., search=(low, high), log=...)``,
or when it is a number with both bounds (then over them); ``--search MEMBER.PARAM=LOW:HIGH[:log]``
replaces the declared search. Every range is checked against the parameter's bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from ..config import RunConfig, _range_text, make_config, to_dict
from ..contract.errors import ConfigError, unknown
from ..zoo.stack import resolve_stack

LR_SPAN = 10.0  # the default learning-rate search: [lr / 10, lr * 10], log scale


@dataclass(frozen=True)
class Dimension:
    """One searched value: ``optim.lr`` or ``MEMBER.PARAM`` of the strategy stack."""

    name: str
    low: float
    high: float
    log: bool = False
    integer: bool = False

    def suggest(self, trial: Any) -> float | int:
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)


def _member_fields(config: RunConfig, zoo: Any) -> dict[str, dict[str, Any]]:
    """``{member: {param: dataclass field}}`` of the config's strategy stack (unknown members: one line)."""
    return {m.name: {f.name: f for f in fields(m.cls.Config)} if getattr(m.cls, "Config", None) else {}
            for m in resolve_stack(config.strategy, zoo)}


def _parse_range(key: str, value: Any) -> tuple[float, float, bool]:
    """``[low, high]``, ``[low, high, log]`` or ``"low:high[:log]"`` as ``(low, high, log)``."""
    parts = value.split(":") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
    if not parts or len(parts) not in (2, 3) or (len(parts) == 3 and str(parts[2]).strip() not in ("log", "linear")):
        raise ConfigError(f"search {key}={value!r}: expected LOW:HIGH or LOW:HIGH:log "
                          "(a list [low, high, log] in YAML)")
    try:
        low, high = float(parts[0]), float(parts[1])
    except (TypeError, ValueError):
        raise ConfigError(f"search {key}={value!r}: LOW and HIGH must be numbers") from None
    log = len(parts) == 3 and str(parts[2]).strip() == "log"
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ConfigError(f"search {key}={value!r}: needs finite LOW < HIGH")
    if log and low <= 0:
        raise ConfigError(f"search {key}={value!r}: a log scale needs LOW > 0")
    return low, high, log


def _within_bounds(key: str, low: float, high: float, bounds: dict[str, float | None]) -> None:
    b = bounds or {}
    if ((b.get("ge") is not None and low < b["ge"]) or (b.get("gt") is not None and low <= b["gt"])
            or (b.get("le") is not None and high > b["le"]) or (b.get("lt") is not None and high >= b["lt"])):
        raise ConfigError(f"search {key}: [{low:g}, {high:g}] leaves the parameter's range {_range_text(b)}")


def declared_dimension(member: str, f: Any) -> Dimension | None:
    """The default search of one parameter: its declared ``search=`` range, else both bounds; ``None`` if neither."""
    bounds, search = f.metadata.get("bounds") or {}, f.metadata.get("search")
    if f.type in (bool, "bool") or isinstance(f.default, bool) or not isinstance(f.default, (int, float)):
        return None
    integer = isinstance(f.default, int)
    if search and search.get("range"):
        low, high = search["range"]
        _within_bounds(f"{member}.{f.name} (declared)", low, high, bounds)
    else:
        low = bounds.get("ge") if bounds.get("ge") is not None else bounds.get("gt")
        high = bounds.get("le") if bounds.get("le") is not None else bounds.get("lt")
        if low is None or high is None:
            return None
        if bounds.get("gt") is not None or bounds.get("lt") is not None:  # open ends: stay just inside
            span = (high - low) * 1e-3
            low += span if bounds.get("gt") is not None else 0.0
            high -= span if bounds.get("lt") is not None else 0.0
    return Dimension(f"{member}.{f.name}", float(low), float(high), bool(search and search.get("log")), integer)


def search_space(config: RunConfig, zoo: Any, given: dict[str, Any] | None = None,
                 lr_range: Any = None, members_searched: list[str] | None = None) -> list[Dimension]:
    """The dimensions a study searches: the learning rate plus each member's declared (or ``given``) parameters.

    Args:
        given: ``{"kd.temperature": "1:16:log", "alpha": [0.5, 1]}``; replaces the declared search
            (a bare ``PARAM`` names the one member that has it). Unknown members or parameters, ranges
            outside a parameter's bounds and non-numeric parameters are one-line errors.
        lr_range: ``"LOW:HIGH[:log]"`` for ``optim.lr`` (default: a tenth to ten times the config's lr, log scale).
        members_searched: the members whose declared parameters are searched (default: all).
    """
    members = _member_fields(config, zoo)
    lr = config.optim.lr
    low, high, log = _parse_range("optim.lr", lr_range) if lr_range is not None else (lr / LR_SPAN, lr * LR_SPAN, True)
    if low <= 0:
        raise ConfigError(f"search optim.lr: the learning rate must stay > 0, got LOW {low:g}")
    space = {"optim.lr": Dimension("optim.lr", low, high, log)}
    if given:
        for key, value in given.items():
            name = _resolve_key(str(key), members)
            if name == "optim.lr":
                space[name] = Dimension(name, *_parse_range(name, value))
                continue
            member, param = name.split(".", 1)
            f = members[member][param]
            if isinstance(f.default, bool) or not isinstance(f.default, (int, float)):
                raise ConfigError(f"search {key}: {member}.{param} is {type(f.default).__name__}, not a number; "
                                  "only numeric parameters are searched (set it as a variant instead)")
            low, high, log = _parse_range(str(key), value)
            _within_bounds(str(key), low, high, f.metadata.get("bounds") or {})
            space[name] = Dimension(name, low, high, log, isinstance(f.default, int))
    else:
        for member, params in members.items():
            if members_searched is not None and member not in members_searched:
                continue
            for f in params.values():
                dim = declared_dimension(member, f)
                if dim is not None:
                    space[dim.name] = dim
    return list(space.values())


def _resolve_key(key: str, members: dict[str, dict[str, Any]]) -> str:
    """``kd.temperature``, ``temperature`` (one member has it), ``lr`` or ``optim.lr`` to its full name."""
    if key in ("lr", "optim.lr"):
        return "optim.lr"
    member, dot, param = key.partition(".")
    if dot:
        if member not in members:
            raise unknown(f"strategy in search key {key!r}", member, list(members))
        if param not in members[member]:
            raise unknown(f"parameter of {member} in search key {key!r}", param, members[member])
        return key
    having = [m for m, params in members.items() if key in params]
    if len(having) == 1:
        return f"{having[0]}.{key}"
    if len(having) > 1:
        raise ConfigError(f"search {key!r}: several members have it ({', '.join(having)}); name one, e.g. "
                          f"{having[0]}.{key}")
    valid = ["optim.lr"] + [f"{m}.{p}" for m, params in members.items() for p in params]
    raise unknown("search parameter", key, valid)


def apply_params(config: RunConfig, params: dict[str, Any]) -> RunConfig:
    """``config`` with a trial's values: ``optim.lr`` and ``MEMBER.PARAM`` (validated like any config)."""
    data = to_dict(config)
    for name, value in params.items():
        if name == "optim.lr":
            data["optim"]["lr"] = value
            continue
        member, param = name.split(".", 1)
        spec = next(s for s in data["strategy"] if s["name"] == member)
        spec["params"] = dict(spec.get("params") or {}, **{param: value})
    return make_config(data)


__all__ = ["Dimension", "apply_params", "declared_dimension", "search_space"]
