"""The catalog shipped inside the package (``registry.yaml``), loaded as data."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml


def load_registry() -> dict[str, Any]:
    """The parsed ``registry.yaml`` (safe YAML: data only)."""
    return yaml.safe_load(resources.files("kdzoo").joinpath("registry.yaml").read_text())


def install_hint(distribution: str | None) -> str:
    """What to ``pip install`` for ``distribution``: an in-repo plugin is kdzoo's extra (``'kdzoo[feature]'``),
    which also keeps it at kdzoo's contract version; any other distribution is itself."""
    if not distribution:
        return "the plugin providing it"
    plugin = load_registry().get("plugins", {}).get(distribution, {})
    if plugin.get("tier") == "in-repo" and distribution.startswith("kdzoo-"):
        return f"'kdzoo[{distribution.removeprefix('kdzoo-')}]'"
    return distribution


def suites_table() -> str:
    """The bundled suites, one per line with its description (``kdzoo bench --list``)."""
    suites = load_registry().get("suites", {})
    width = max(map(len, suites), default=5)
    lines = [f"{'suite':<{width}}  description", *(f"{name:<{width}}  {suite.get('description', '')}"
                                                    for name, suite in suites.items())]
    hint = "(kdzoo bench --suite NAME --list shows a suite's cells; --suite also takes a YAML file)"
    return "\n".join(lines + [hint])
