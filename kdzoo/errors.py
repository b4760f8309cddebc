"""Errors kdzoo reports to users as one line (the CLI exits with code 2)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class KdzooError(Exception):
    """Base class of user-facing errors."""


class ConfigError(KdzooError, ValueError):
    """A bad value in a run configuration, CLI flag or YAML file."""


class PluginError(KdzooError):
    """A plugin failed to load or registered something invalid."""


def unknown(kind: str, value: object, choices: Iterable[str]) -> ConfigError:
    """Build the standard "unknown X" error naming the closest valid choices.

    Args:
        kind: what was looked up, e.g. ``"strategy"``.
        value: the bad value.
        choices: every valid value.
    """
    choices = sorted(choices)
    close = difflib.get_close_matches(str(value), choices, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    listing = ", ".join(choices) if len(choices) <= 25 else ", ".join(choices[:25]) + ", ..."
    return ConfigError(f"unknown {kind} {value!r}; {hint}valid: {listing}")
