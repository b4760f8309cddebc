"""Errors kdzoo reports to users as one line (the CLI exits with code 2)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class KdzooError(Exception):
    """Base class of user-facing errors."""


class ConfigError(KdzooError, ValueError):
    """A bad value in a run configuration, CLI flag or YAML file."""


class NotApplicable(ConfigError):
    """A strategy cannot do anything on this setup (e.g. a weighted loss term never reaches the student).

    The run fails with one line; a bench cell shows "not applicable: ..." and gets no verdict.
    """


class MissingOutput(ConfigError):
    """A model cannot give an output a strategy asks for (e.g. the pooled feature of a user's module
    that has no classifier layer); a user error, reported in one line."""


class PluginError(KdzooError):
    """A plugin failed to load or registered something invalid."""


class NonFiniteLoss(KdzooError):
    """A loss term became NaN or infinite; the run stops (``train.nonfinite: skip`` skips such steps)."""


class Interrupted(Exception):
    """Training stopped by SIGINT/SIGTERM after saving a checkpoint.

    Attributes:
        signum: the signal.
        hint: how to continue (set by whoever knows: a run directory to ``--resume``, or "run the
            same command again" for a cached teacher).
    """

    def __init__(self, signum: int, hint: str = "continue with --resume RUN_DIR") -> None:
        super().__init__(signum, hint)
        self.signum, self.hint = signum, hint

    def __str__(self) -> str:
        return f"interrupted by signal {self.signum}; checkpoint saved, {self.hint}"


def error_line(exc: BaseException) -> str:
    """The one line a user sees for ``exc``: ``kdzoo: error: ...`` (newlines folded, no doubled prefix)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    while text.startswith("kdzoo: "):
        text = text[len("kdzoo: "):].removeprefix("error: ")
    return f"kdzoo: error: {text}"


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
