"""Strategy parameter declarations: a documented, bounded dataclass field and what is read back from it.

Owns :func:`param` (a strategy parameter: help, bounds, the range ``kdzoo tune`` searches),
:func:`bounded` (a field with bounds only, as the run config's own sections use), the readers
:func:`param_help` and :func:`param_range` (a strategy's ``--help`` and listings), and
:func:`check_value` (one value against its bounds). The run config (:mod:`kdzoo.config`) builds and
checks fields declared here and re-exports these names; plugins take ``param`` from :mod:`kdzoo.plugin`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import field
from typing import Any

from .errors import ConfigError


def bounded(default: Any = dataclasses.MISSING, *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None, **kwargs: Any) -> Any:
    """A dataclass field whose numeric value (or every number in its list) must lie in a range.

    :func:`kdzoo.config.build` checks the bounds of every field built from plain data and
    :func:`kdzoo.config.validate` re-checks a whole config, so a value out of range fails with one line before anything runs.
    ``None`` (where the type allows it) always passes: it means "off" or "default".
    """
    return field(default=default, metadata={"bounds": {"ge": ge, "gt": gt, "le": le, "lt": lt}}, **kwargs)


def param(default: Any = dataclasses.MISSING, *, help: str, ge: float | None = None, gt: float | None = None,
          le: float | None = None, lt: float | None = None, search: tuple[float, float] | None = None,
          log: bool = False, **kwargs: Any) -> Any:
    """A documented strategy parameter: one declaration feeds validation, ``kdzoo strategies`` and the docs.

    Args:
        default: the default value (or pass ``default_factory=``).
        help: one sentence saying what the parameter does (shown by ``kdzoo strategies NAME`` and in
            ``docs/strategies.md``).
        ge, gt, le, lt: bounds, checked (with finiteness) on every value built from YAML, the CLI or a
            preset, and on the default when the strategy is registered.
        search: ``(low, high)`` that ``kdzoo tune`` searches by default (within the bounds); a number
            with both bounds is searched over them when this is not given.
        log: ``kdzoo tune`` samples the parameter on a log scale (a temperature, a loss weight).
    """
    metadata = {"bounds": {"ge": ge, "gt": gt, "le": le, "lt": lt}, "help": help}
    if search is not None or log:
        metadata["search"] = {"range": None if search is None else (float(search[0]), float(search[1])), "log": log}
    return field(default=default, metadata=metadata, **kwargs)


def param_help(cls: type) -> dict[str, str]:
    """``{field: help}`` of a parameter dataclass (``""`` for a field declared without :func:`param`)."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def param_range(cls: type) -> dict[str, str]:
    """``{field: range}`` (e.g. ``"> 0"``, ``"in [0, 1]"``) of the bounded fields of a parameter dataclass."""
    out = {}
    for f in dataclasses.fields(cls):
        bounds = f.metadata.get("bounds")
        if bounds and any(v is not None for v in bounds.values()):
            out[f.name] = _range_text(bounds)
    return out


def _range_text(b: dict[str, float | None]) -> str:
    low = f">= {b['ge']}" if b["ge"] is not None else f"> {b['gt']}" if b["gt"] is not None else None
    high = f"<= {b['le']}" if b["le"] is not None else f"< {b['lt']}" if b["lt"] is not None else None
    if low and high:
        return f"in {'[' if b['ge'] is not None else '('}{b['ge'] if b['ge'] is not None else b['gt']}, " \
               f"{b['le'] if b['le'] is not None else b['lt']}{']' if b['le'] is not None else ')'}"
    return low or high or "finite"


def check_value(value: Any, bounds: dict[str, float | None] | None, path: str) -> None:
    """Raise a one-line :class:`ConfigError` if ``value`` (or a number in it) is non-finite or out of range."""
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_value(v, bounds, f"{path}[{i}]")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if not math.isfinite(value):
        raise ConfigError(f"{path} must be a finite number, got {value!r}")
    if not bounds:
        return
    b = bounds
    if ((b["ge"] is not None and value < b["ge"]) or (b["gt"] is not None and value <= b["gt"])
            or (b["le"] is not None and value > b["le"]) or (b["lt"] is not None and value >= b["lt"])):
        raise ConfigError(f"{path} must be {_range_text(b)}, got {value!r}")


__all__ = ["bounded", "check_value", "param", "param_help", "param_range"]
