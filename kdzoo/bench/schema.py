"""The shape of a bench suite, checked before any cell is expanded: each mistake is one line.

A suite is read from YAML, where a misspelt key is silently ignored and ``strategies: kd`` is a
string, not a list: without these checks ``seed: [0, 1]`` runs seed 0 only, ``seeds: [0, 0, 1]`` is
reported as three seeds (the verdict sees two), and ``kd`` is read letter by letter. Per-run
settings in a task (``data``, ``optim``, ...) are checked by :func:`kdzoo.config.make_config` when
the cells are built.
"""

from __future__ import annotations

from typing import Any

from ..config import SEED_MAX
from ..contract.errors import ConfigError, unknown

SUITE_KEYS = ("name", "description", "seeds", "tasks", "tune", "executor", "executor_options")  # a new top-level key is added here


def check_suite(suite: Any, name: str) -> None:
    """Raise :class:`ConfigError` (one line) unless ``suite`` has the shape of a bench suite.

    Args:
        suite: the suite as read from YAML or ``registry.yaml``.
        name: how the user named it (for the error line).
    """
    where = f"suite {name!r}"
    if not isinstance(suite, dict):
        raise ConfigError(f"{where} must be a mapping with 'tasks', got {type(suite).__name__}")
    for key in suite:
        if key not in SUITE_KEYS:
            raise unknown(f"key in {where}", key, SUITE_KEYS)
    if "seeds" in suite:
        check_seeds(suite["seeds"], f"{where}: seeds")
    tasks = suite.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise ConfigError(f"{where}: 'tasks' must be a non-empty list of tasks, got {tasks!r}"[:300])
    for i, task in enumerate(tasks):
        tname = task.get("name", f"task{i}") if isinstance(task, dict) else f"task{i}"
        here = f"{where} task {tname!r}"
        if not isinstance(task, dict):
            raise ConfigError(f"{here} must be a mapping (data, pairs, strategies, ...), got {type(task).__name__}")
        if "seeds" in task:
            check_seeds(task["seeds"], f"{here}: seeds")
        strategies = task.get("strategies")
        if not isinstance(strategies, list) or not strategies:
            example = f"[{strategies}]" if isinstance(strategies, str) else "[ce, kd]"
            raise ConfigError(f"{here}: 'strategies' must be a non-empty list, e.g. strategies: {example}; "
                              f"got {strategies!r}"[:300])
        pairs = task.get("pairs")
        if not isinstance(pairs, list) or not pairs:
            raise ConfigError(f"{here}: 'pairs' must be a non-empty list of {{teacher, student}}, got {pairs!r}"[:300])
        for j, pair in enumerate(pairs):
            if not isinstance(pair, dict) or not pair.get("student"):
                raise ConfigError(f"{here}: pair {j} has no student; each pair is {{teacher: MODEL, student: MODEL}} "
                                  f"(teacher optional), got {pair!r}"[:300])


def check_seeds(seeds: Any, where: str) -> None:
    """Seeds are a non-empty list of distinct integers in ``[0, 2**32 - 1]``."""
    if not isinstance(seeds, list) or not seeds:
        raise ConfigError(f"{where} must be a non-empty list of integers, e.g. [0, 1, 2], got {seeds!r}"[:300])
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
            raise ConfigError(f"{where}: {seed!r} is not a seed (an integer in [0, {SEED_MAX}])"[:300])
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ConfigError(f"{where} repeats {', '.join(map(str, repeated))} (got {seeds}); each seed is one run, "
                          "give distinct seeds"[:300])


__all__ = ["SUITE_KEYS", "check_seeds", "check_suite"]
