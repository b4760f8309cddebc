"""Executors: where a bench's cells (or a tuning study's trials) run.

An executor takes :class:`Task` s (a picklable module-level callable, its arguments and the
:class:`Resources` it needs), submits them, reports each one's :class:`TaskState` and cancels
them. The bench registers kdzoo's three through the ``register_executors`` hook, as part of kdzoo's own
plugin (:mod:`kdzoo.bench.executors.builtin`; the interface itself is in :mod:`kdzoo.bench.executors.base`):

* ``local``: worker processes on this machine (``kdzoo bench`` keeps its pool and ``flock`` claims);
* ``slurm``: one Slurm job per task, through submitit (``pip install 'kdzoo[slurm]'``);
* ``ray``: one Ray task per task, on a running Ray cluster or a local one (``pip install 'kdzoo[ray]'``).

Nothing in a task depends on the executor: a bench cell is the same call wherever it runs
(:func:`kdzoo.bench.executors.cell.run_cell_task`), so cell keys, folders and results are the same.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from ...contract.errors import unknown
from .base import NOT_APPLICABLE, STATES, Executor, Handle, MissingExtra, Resources, Task, TaskState
from .builtin import with_builtin_executors


def executor_names(zoo: Any) -> list[str]:
    """The executors ``zoo`` offers: kdzoo's own (added by the bench) and every plugin's."""
    return sorted(with_builtin_executors(zoo).collect().executors)


def make_executor(name: str, options: dict[str, Any] | None, zoo: Any) -> Executor:
    """The executor registered as ``name``, built with ``options``; a one-line error when its package is missing."""
    entries = with_builtin_executors(zoo).collect().executors
    if name not in entries:
        raise unknown("executor", name, entries)
    entry = entries[name]
    package = entry.meta.get("requires")
    if package and importlib.util.find_spec(package) is None:
        install = entry.meta.get("install") or package
        raise MissingExtra(f"executor {name!r} needs the {package!r} package: pip install {install}")
    return entry.obj(dict(options or {}))


__all__ = ["Executor", "Handle", "MissingExtra", "NOT_APPLICABLE", "Resources", "STATES", "Task", "TaskState", "executor_names",
           "make_executor", "with_builtin_executors"]
