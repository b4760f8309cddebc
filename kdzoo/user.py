"""Your own objects in a run: ``nn.Module`` teachers and students, torch ``Dataset``s and ``DataLoader``s.

This module owns taking them from a Python caller (:func:`from_python`, :class:`UserObjects`); the
model half (:class:`HookedNet`, ``wrap_module``: any module with timm's feature API) is
:mod:`kdzoo.models.user` and the data half (``user_bundle``, :class:`UserLoaderPlan`) is
:mod:`kdzoo.data.user`. Their names are re-exported here, so ``from kdzoo.user import ...`` keeps
working. A teacher object is used as given: frozen, never trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from .contract.errors import ConfigError
from .data.user import (USER_DATA, UserLoaderPlan, UserSamples, as_input, dataset_of,  # noqa: F401 - re-exported
                        is_deterministic, targets_of, user_bundle)
from .models.user import HookedNet, default_layers, student_copy, wrap_module  # noqa: F401 - re-exported


@dataclass
class UserObjects:
    """What a Python caller passed to :func:`kdzoo.distill` besides the config."""

    teacher: nn.Module | None = None
    student: nn.Module | None = None
    train: Any = None
    val: Any = None
    test: Any = None

    @property
    def has_data(self) -> bool:
        return self.train is not None


def from_python(config: Any, *, teacher: Any = None, student: Any = None, train: Any = None, val: Any = None,
                test: Any = None) -> tuple[Any, UserObjects | None]:
    """Split a Python caller's objects from plain config data.

    Modules may come as keyword arguments or in ``config["teacher"]``/``config["student"]`` (a
    module, or ``{"object": module, "input_size": ..., "mean": ..., "std": ..., "kwargs":
    {"feature_layers": [...], "classifier": "fc"}}``). The config then names them ``user:CLASS``
    and ``data.name`` becomes ``user`` when datasets are given.

    Returns:
        ``(config data, objects)``; ``objects`` is ``None`` when nothing but plain data was passed.
    """
    from torch.utils.data import DataLoader, Dataset

    data = dict(config) if isinstance(config, dict) else config
    objects = UserObjects(teacher=teacher, student=student, train=train, val=val, test=test)
    if isinstance(data, dict):
        for role in ("teacher", "student"):
            value = data.get(role)
            if isinstance(value, nn.Module):
                value = {"object": value}
            if isinstance(value, dict) and "object" in value:
                value = dict(value)
                setattr(objects, role, value.pop("object"))
                data[role] = value
    for role in ("teacher", "student"):
        module = getattr(objects, role)
        if module is None:
            continue
        if not isinstance(module, nn.Module):
            raise ConfigError(f"{role}: expected a torch nn.Module, got {type(module).__name__}")
        if data is None:
            data = {}
        if isinstance(data, dict):
            entry = dict(data.get(role) or {}) if not isinstance(data.get(role), str) else {}
            entry.setdefault("name", f"user:{type(module).__name__}")
            data[role] = entry
    for role in ("train", "val", "test"):
        value = getattr(objects, role)
        if value is not None and not isinstance(value, (Dataset, DataLoader)):
            raise ConfigError(f"{role}: expected a torch Dataset or DataLoader, got {type(value).__name__}")
    if objects.has_data and isinstance(data, dict):
        section = data.get("data")
        section = {"name": section} if isinstance(section, str) else dict(section or {})
        section["name"] = USER_DATA
        data["data"] = section
    elif (objects.val is not None or objects.test is not None) and not objects.has_data:
        raise ConfigError("val/test datasets need a train dataset too (train=...)")
    if objects.teacher is None and objects.student is None and not objects.has_data:
        return config, None
    return data, objects


__all__ = ["HookedNet", "USER_DATA", "UserLoaderPlan", "UserObjects", "UserSamples", "from_python", "user_bundle",
           "wrap_module"]
