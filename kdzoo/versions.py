"""Installed distributions' versions, looked up in one place.

``kdzoo --version``, ``kdzoo.version()``, the plugin contract check, a run's provenance, the effective
config a bench cell is keyed by and a bench's provenance all read versions through :func:`dist_version`,
so they agree on what is installed and on what a source tree that was never installed reports.
"""

from __future__ import annotations

import importlib.metadata as md

UNINSTALLED = "0+unknown"  # kdzoo's version when it runs from a source tree that was never installed


def dist_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or ``None`` when it is not installed."""
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def kdzoo_version() -> str:
    """The running kdzoo's version (``0+unknown`` from a source tree that was never installed)."""
    return dist_version("kdzoo") or UNINSTALLED


__all__ = ["UNINSTALLED", "dist_version", "kdzoo_version"]
