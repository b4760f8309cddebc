"""The executor interface: what a task is (:class:`Task`, its :class:`Resources`), how it is tracked
(:class:`Handle`, :class:`TaskState`) and the abstract :class:`Executor` every executor implements.

The built-in executors (``local.py``, ``slurm.py``, ``ray_tasks.py``) and a plugin's import these
names from :mod:`kdzoo.bench.executors`, which re-exports them.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from ...contract.errors import ConfigError, unknown

STATES = ("queued", "running", "done", "failed")
NOT_APPLICABLE = "not applicable: "  # status prefix of a cell whose strategy cannot act on its pair: no verdict


@dataclass
class Resources:
    """What one task asks of its scheduler.

    Attributes:
        gpus: GPUs per task; more than one runs the cell under ``torchrun`` with one process per GPU.
        cpus: CPU cores per task (the cell's threads stay as its config sets them).
        mem: memory per task, as Slurm writes it (``8G``, ``500M``); ``None``: the scheduler's default.
        time: wall-clock limit in minutes (Slurm); ``None``: the partition's default.
        partition: Slurm partition.
        account: Slurm account.
        sbatch: extra ``sbatch`` flags, e.g. ``["--qos=high", "--constraint=a100"]``.
        procs: processes per task under ``torchrun`` (default: ``gpus`` when it is above one, else one
            process without ``torchrun``); on CPU this runs DDP with gloo.
    """

    gpus: int = 0
    cpus: int = 1
    mem: str | None = None
    time: int | None = None
    partition: str | None = None
    account: str | None = None
    sbatch: list[str] = field(default_factory=list)
    procs: int | None = None

    @property
    def processes(self) -> int:
        return self.procs or (self.gpus if self.gpus > 1 else 1)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, where: str = "resources") -> Resources:
        """Build from a suite's ``resources:`` mapping, with one-line errors for bad keys and values."""
        data = dict(data or {})
        names = {f.name for f in fields(cls)}
        for key in data:
            if key not in names:
                raise unknown(f"key in {where}", key, names)
        for key in ("gpus", "cpus", "time", "procs"):
            value = data.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0
                                      or (key != "gpus" and value < 1)):
                raise ConfigError(f"{where}.{key} must be a whole number {'>= 0' if key == 'gpus' else '>= 1'}, "
                                  f"got {value!r}")
        if isinstance(data.get("sbatch"), str):
            data["sbatch"] = data["sbatch"].split()
        if "mem" in data and data["mem"] is not None:
            data["mem"] = str(data["mem"])
        return cls(**data)

    def merged(self, overrides: dict[str, Any]) -> Resources:
        """These resources with the set values of ``overrides`` (the command line) on top."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in overrides.items():
            if value is None or value == []:
                continue
            data[key] = data[key] + list(value) if key == "sbatch" else value
        return Resources.from_dict(data)


@dataclass
class Task:
    """One unit of work for an executor: ``fn(*args)`` with its resources.

    Attributes:
        key: a stable identity (a bench cell's key, a trial's number): what handles and records name.
        label: what a person reads (``task | pair | variant | seed N``).
        fn: a module-level callable (pickled by reference: importable wherever the task runs).
        args: its arguments (plain data).
        resources: what it asks of the scheduler.
        log_dir: where the executor keeps this task's logs.
    """

    key: str
    label: str
    fn: Callable[..., Any]
    args: tuple
    resources: Resources
    log_dir: Path


@dataclass
class Handle:
    """A submitted task: the executor's id for it (Slurm job id, Ray task id, local pid slot) and its log."""

    key: str
    executor: str
    id: str
    log: str | None = None
    info: dict[str, Any] = field(default_factory=dict)  # what the executor needs to find it again (plain data)
    extra: Any = None  # the executor's own object (a submitit job, a Ray object ref); never saved

    def record(self) -> dict[str, Any]:
        """What a detached bench saves to find the task again (:meth:`Executor.attach`)."""
        return {"key": self.key, "executor": self.executor, "id": self.id, "log": self.log, "info": self.info}


@dataclass
class TaskState:
    """Where a task stands: ``queued``, ``running``, ``done`` (with its result) or ``failed`` (with why)."""

    state: str
    result: Any = None
    error: str | None = None


class Executor(abc.ABC):
    """The interface every executor implements (see ``register_executors``): ``submit``, ``poll``, ``cancel``."""

    name = "?"
    detachable = False  # tasks outlive the command that submitted them (Slurm: yes; Ray: tasks die with their driver)

    @abc.abstractmethod
    def submit(self, tasks: list[Task]) -> list[Handle]:
        """Submit every task; returns one handle per task, in order."""

    @abc.abstractmethod
    def poll(self, handles: list[Handle]) -> dict[str, TaskState]:
        """The state of each handle, by its task key."""

    @abc.abstractmethod
    def cancel(self, handles: list[Handle]) -> None:
        """Stop these tasks (queued ones never start; running ones are killed)."""

    def attach(self, record: dict[str, Any]) -> Handle | None:
        """A handle for a task an earlier (detached) command submitted, if the scheduler still knows it."""
        return None

    def close(self) -> None:
        """Release what the executor holds (a Ray connection); tasks of a detachable executor keep running."""


class MissingExtra(ConfigError):
    """An executor's package is not installed: one line naming the pip extra."""


__all__ = ["Executor", "Handle", "MissingExtra", "NOT_APPLICABLE", "Resources", "STATES", "Task", "TaskState"]
