"""The catalog shipped inside the package (``registry.yaml``), loaded as data."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml


def load_registry() -> dict[str, Any]:
    """The parsed ``registry.yaml`` (safe YAML: data only)."""
    return yaml.safe_load(resources.files("kdzoo").joinpath("registry.yaml").read_text())
