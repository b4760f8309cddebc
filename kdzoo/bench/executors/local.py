"""``local``: tasks in fresh worker processes on this machine.

``kdzoo bench --executor local`` (the default) keeps the bench's own pool and ``flock`` claims
(:func:`kdzoo.bench.suite._run_cells`); this executor is the same machine behind the generic
:class:`~kdzoo.bench.executors.Executor` interface, for callers that submit tasks (tuning trials,
``benchmarks/executor_overhead.py``): each task runs in a fresh spawned process, as a Slurm job or a
Ray task does, with ``jobs`` of them at a time.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from .base import Executor, Handle, Task, TaskState


class LocalExecutor(Executor):
    """Tasks in ``jobs`` spawned worker processes, a fresh one per task."""

    name = "local"

    def __init__(self, options: dict[str, Any]) -> None:
        self.jobs = int(options.get("jobs") or 1)
        self._pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=mp.get_context("spawn"),
                                          max_tasks_per_child=1)
        self._count = 0

    def submit(self, tasks: list[Task]) -> list[Handle]:
        handles = []
        for task in tasks:
            self._count += 1
            future = self._pool.submit(task.fn, *task.args)
            handles.append(Handle(task.key, self.name, f"{os.getpid()}-{self._count}", extra=future))
        return handles

    def poll(self, handles: list[Handle]) -> dict[str, TaskState]:
        states = {}
        for handle in handles:
            future: Future = handle.extra
            if future.running():
                states[handle.key] = TaskState("running")
            elif not future.done():
                states[handle.key] = TaskState("queued")
            elif future.cancelled():
                states[handle.key] = TaskState("failed", error="cancelled")
            elif future.exception() is not None:
                exc = future.exception()
                states[handle.key] = TaskState("failed", error=f"{type(exc).__name__}: {exc}")
            else:
                states[handle.key] = TaskState("done", future.result())
        return states

    def cancel(self, handles: list[Handle]) -> None:
        for handle in handles:
            handle.extra.cancel()
        for proc in list((getattr(self._pool, "_processes", None) or {}).values()):
            if proc.is_alive():
                proc.terminate()  # SIGTERM: a running cell checkpoints and stops

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def make_local(options: dict[str, Any]) -> LocalExecutor:
    return LocalExecutor(options)
