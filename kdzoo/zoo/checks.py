"""What kdzoo checks of a plugin before it runs anything: its kdzoo version range and each strategy class.

Each refusal is one line that points at the plugin's own ``FILE:LINE``: the field of a ``Config``
default, the ``needs`` method, the attribute kdzoo no longer reads.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as md
import inspect
import os
import re
import sys
import typing
from typing import Any

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as Dependency
from packaging.utils import canonicalize_name

from ..contract.errors import PluginError
from ..config import build, check_defaults
from ..contract.errors import ConfigError


class PluginLoadError(PluginError):
    """A plugin defect found while loading it, with the ``file:line`` it points at.

    Attributes:
        where: ``path:line`` of the offending definition (``""`` when unknown).
    """

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.where = where


def contract_refusal(dist: md.Distribution, running: str) -> str | None:
    """Why ``dist`` cannot load here: its ``Requires-Dist`` on ``kdzoo`` excludes the running version (else None).

    A running kdzoo without metadata (a source checkout never installed) cannot tell, and refuses nothing.

    Args:
        dist: the plugin's installed distribution.
        running: the running kdzoo's version (``"0+unknown"`` without metadata).

    Returns:
        One line naming the distribution, its range and the running version; ``None`` when it may load.
    """
    if running == "0+unknown":
        return None
    for text in dist.requires or []:
        try:
            dependency = Dependency(text)
        except InvalidRequirement:
            continue
        if canonicalize_name(dependency.name) != "kdzoo":
            continue
        if dependency.marker is not None and not dependency.marker.evaluate({"extra": ""}):
            continue
        if not dependency.specifier.contains(running, prereleases=True):
            name = dist.metadata["Name"]
            return (f"{name} {dist.version} requires kdzoo{dependency.specifier}, but this is kdzoo {running}; "
                    f"install a release of {name} made for kdzoo {running}")
    return None


def check_strategy_class(cls: type) -> None:
    """Contract checks that need no run: what registration (and :func:`kdzoo.testing.check_strategy`) enforce.

    Checks that every ``Config`` default matches its field's type and bounds, and that the student
    requirement of ``needs()`` keeps the logits whenever the hard-label term is weighted (the trainer
    computes that term from the student's logits; without them it would vanish without a word).

    Raises:
        PluginLoadError: one line naming the strategy and the defect; ``where`` is the ``FILE:LINE`` of
            the field, method or attribute at fault.
    """
    from torch import nn

    from ..contract.strategy import label_weight_of  # lazy: start-up cost (torch)

    for gone, instead in (("label_weight", "return it as term_weights()['label'] (kdzoo.plugin.alpha_blend for alpha)"),
                          ("teacher_grad", "remove it: the teacher's outputs are constants of the student's loss"),
                          ("smoke_params", "make it the 'smoke' preset")):
        owner = next((klass for klass in cls.__mro__[:-1]
                      if klass.__module__ != "kdzoo.contract.strategy" and gone in vars(klass)), None)
        if owner is not None:
            raise PluginLoadError(f"strategy {cls.name!r} defines {gone!r}, which kdzoo no longer reads; {instead}",
                                  member_line(owner, gone) or source_line(cls))

    try:
        check_defaults(cls.Config, f"strategy {cls.name!r}: Config.")
    except ConfigError as exc:
        field_path = re.search(r"Config\.([A-Za-z_][\w.]*)", str(exc))
        where = field_line(cls.Config, field_path.group(1).split(".")) if field_path else ""
        raise PluginLoadError(str(exc), where or source_line(cls.Config)) from exc
    try:  # a bare instance with the default config: needs() and the weights depend on the config only
        probe = cls.__new__(cls)
        nn.Module.__init__(probe)
        try:
            probe.config = build(cls.Config, {})
        except ConfigError:  # a parameter without a usable default (a path): the smoke preset fills it
            probe.config = build(cls.Config, dict(cls.presets.get("smoke", {})))
        needs, weight = probe.needs(), label_weight_of(probe)
    except Exception:  # noqa: BLE001 - needs() reads run state; the stack checks it when the run is built
        return
    if weight > 0 and not needs.student.logits:
        raise PluginLoadError(dropped_label_message(cls.name, weight), source_line(cls.needs))


def dropped_label_message(strategy: str, weight: float) -> str:
    """The one line for a strategy whose student needs exclude the logits the hard-label term needs."""
    return (f"strategy {strategy!r}: needs() asks the student for no logits, so the hard-label loss "
            f"(weight {weight:g}) would be dropped; add logits=True to the student Requirement or weight "
            "the label term 0")


def source_line(obj: Any) -> str:
    """``path:line`` where ``obj`` (function or class) is defined, or ``""``."""
    try:
        target = inspect.unwrap(obj)
        lines, start = inspect.getsourcelines(target)
        # the ``def``/``class`` line itself, not its first decorator
        starts = ("def ", "async def ", "class ")
        offset = next((i for i, line in enumerate(lines) if line.lstrip().startswith(starts)), 0)
        return f"{inspect.getsourcefile(target)}:{start + offset}"
    except (TypeError, OSError):
        return ""


def package_line(obj: Any) -> str:
    """``package/module.py:line`` of ``obj``: :func:`source_line` relative to its top-level package's
    folder, the same on every machine (for messages that land in bench tables)."""
    where = source_line(obj)
    module = sys.modules.get(getattr(inspect.unwrap(obj), "__module__", "") or "")
    top = sys.modules.get(module.__name__.split(".")[0]) if module is not None else None
    folder = getattr(top, "__file__", None)
    if not where or not folder:
        return where
    base = os.path.dirname(folder)
    if os.path.basename(folder) == "__init__.py":  # a package: paths start at its folder's name
        base = os.path.dirname(base)
    path, _, line = where.rpartition(":")
    return f"{os.path.relpath(path, base)}:{line}" if path.startswith(base + os.sep) else where


def member_line(klass: type, attr: str) -> str:
    """``path:line`` where class ``klass`` defines ``attr`` (a method, a field or an attribute), or ``""``."""
    try:
        lines, start = inspect.getsourcelines(klass)
        path = inspect.getsourcefile(klass)
    except (TypeError, OSError):
        return ""
    pattern = re.compile(rf"^\s+(?:(?:async\s+)?def\s+{re.escape(attr)}\b|{re.escape(attr)}\s*[:=])")
    return next((f"{path}:{start + i}" for i, line in enumerate(lines) if pattern.match(line)), "")


def field_line(config: type, path: list[str]) -> str:
    """``path:line`` of the dataclass field at ``path`` (``["sub", "weight"]`` follows nested dataclasses)."""
    klass = config
    for i, name in enumerate(path):
        owner = next((k for k in klass.__mro__ if name in vars(k).get("__annotations__", {})), None)
        if owner is None:
            return ""
        if i == len(path) - 1:
            return member_line(owner, name)
        try:
            klass = typing.get_type_hints(klass).get(name)
        except Exception:  # noqa: BLE001 - an unresolvable hint: point at the outer field instead
            return member_line(owner, name)
        if not (isinstance(klass, type) and dataclasses.is_dataclass(klass)):
            return member_line(owner, name)
    return ""


__all__ = ["PluginLoadError", "check_strategy_class", "contract_refusal", "dropped_label_message", "field_line",
           "member_line", "package_line", "source_line"]
