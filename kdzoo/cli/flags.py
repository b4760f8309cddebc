"""Run flags to config data: ``--teacher``, ``--data``, ``--epochs``... laid over a run config's keys.

``kdzoo distill``, ``teacher`` and ``tune`` share these flags; :func:`_config_data` turns them (and
``-c FILE``) into the data :func:`kdzoo.config.make_config` reads, and tells a model name from a
weights file or folder.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any
from ..config import load_yaml

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".tar", ".ckpt")


def _model_section(data: dict[str, Any], role: str, value: str) -> dict[str, Any]:
    """``--teacher``/``--student`` over the config's section: a model name, or a weights file or folder
    (then the name comes from the file unless the config gives one)."""
    section = dict(data[role]) if isinstance(data.get(role), dict) else {}
    path = _weights_path(value)
    if path:
        section["checkpoint"] = path
        if not section.get("name"):
            section["name"] = _name_from_file(path, f"{role} checkpoint")
    else:
        section["name"] = value
    return section


def _config_data(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(args.config) if args.config else {}
    if args.teacher:
        data["teacher"] = _model_section(data, "teacher", args.teacher)
    section = lambda key: data.setdefault(key, {}) if isinstance(data.get(key, {}), dict) else data[key]  # noqa: E731
    if args.data:
        section("data")["name"] = args.data
    if args.data_root:
        section("data")["root"] = args.data_root
    if args.threads is not None:
        section("runtime")["threads"] = args.threads
    if args.device:
        section("runtime")["device"] = args.device
    if args.no_progress:
        section("runtime")["progress"] = False
    if getattr(args, "student", None):
        data["student"] = _model_section(data, "student", args.student)
    if getattr(args, "strategy", None):
        data["strategy"] = args.strategy
    if getattr(args, "labels_per_class", None) is not None:
        section("data")["labels_per_class"] = args.labels_per_class
    if getattr(args, "steps", None) is not None:
        section("train")["steps"] = args.steps
    if args.epochs is not None:
        section("train")["epochs"] = args.epochs
    if getattr(args, "seeds", None) is not None:  # --seeds "" is refused (no seed), never read as the default
        section("train")["seeds"] = args.seeds
    if getattr(args, "out", None):
        data["out"] = args.out
    if getattr(args, "name", None):
        data["name"] = args.name
    return data


def _weights_path(value: str) -> str | None:
    """The weights file or folder ``value`` names, or ``None`` for a model name.

    timm and kdzoo model names hold no '/'; timm's ``local-dir:FOLDER`` spelling is accepted too.
    """
    if value.startswith("local-dir:"):
        return value[len("local-dir:"):]
    path = Path(value)
    if value.endswith(WEIGHT_SUFFIXES) or "/" in value or os.sep in value or path.is_file() or (
            path / "config.json").is_file():
        return value
    return None


def _name_from_file(path: str, role: str) -> str:
    from ..models.weights import model_name_from_file  # lazy: start-up cost (torch)

    return model_name_from_file(path, role)
