"""``ray``: one Ray task per task (``pip install 'kdzoo[ray]'``).

The driver joins a running cluster (``address``: ``auto``, ``ray://HOST:10001``, or ``RAY_ADDRESS``)
or starts a local one, and submits each task with its resources (``num_cpus``, ``num_gpus``,
``memory``). Ray sets a worker's thread counts from ``num_cpus``; a cell's threads stay as its
config sets them. Each task gets a fresh worker process (``max_calls=1``), as a Slurm job does: no
cell inherits another's imports, threads or memory. A task whose worker dies (a killed process, a lost node) is retried by Ray
(``retries``, default 1) and the retry resumes the cell from its checkpoint. Tasks belong to their
driver: they stop when the command stops, so ``--detach`` is not offered.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ray  # an optional dependency: this module is imported only when the ray executor is chosen

from .base import Executor, Handle, Task, TaskState

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def memory_bytes(mem: str | None) -> int | None:
    """Slurm's ``8G``/``500M`` (a bare number is megabytes, as in Slurm) as bytes for Ray."""
    if not mem:
        return None
    text = mem.strip().upper().rstrip("B")
    unit = text[-1] if text[-1] in UNITS else "M"
    return int(float(text.rstrip("KMGT")) * UNITS[unit])


class RayExecutor(Executor):
    """One Ray task per task; polled with ``ray.wait``, cancelled with ``ray.cancel(force=True)``."""

    name = "ray"

    def __init__(self, options: dict[str, Any]) -> None:
        self.retries = int(options.get("retries", 1))
        self._started = False
        if not ray.is_initialized():
            address = options.get("address") or os.environ.get("RAY_ADDRESS") or None
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
            self._started = True
        self.node_id = ray.get_runtime_context().get_node_id()

    def submit(self, tasks: list[Task]) -> list[Handle]:
        handles = []
        for task in tasks:
            r = task.resources
            remote = ray.remote(max_calls=1)(task.fn).options(num_cpus=r.cpus, num_gpus=r.gpus, memory=memory_bytes(r.mem),
                                                 max_retries=self.retries, retry_exceptions=False,
                                                 name=f"kdzoo-{task.key}")
            ref = remote.remote(*task.args)
            log = str(Path(task.log_dir) / f"{task.key}.log")
            handles.append(Handle(task.key, self.name, ref.task_id().hex(), log, {}, ref))
        return handles

    def poll(self, handles: list[Handle]) -> dict[str, TaskState]:
        refs = [h.extra for h in handles]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0) if refs else ([], [])
        ready_ids = {ref.hex() for ref in ready}
        states = {}
        for handle in handles:
            if handle.extra.hex() not in ready_ids:
                states[handle.key] = TaskState("queued")  # the driver tells queued from running by the cell's record
                continue
            try:
                states[handle.key] = TaskState("done", ray.get(handle.extra))
            except Exception as exc:  # noqa: BLE001 - the task's failure, whatever it was, fails the cell
                cause = getattr(exc, "cause", None) or exc
                text = " ".join(str(cause).split())
                states[handle.key] = TaskState("failed", error=f"ray task {handle.id} (log {handle.log}): "
                                                               f"{type(cause).__name__}: {text[-400:]}")
        return states

    def cancel(self, handles: list[Handle]) -> None:
        for handle in handles:
            try:
                ray.cancel(handle.extra, force=True)
            except Exception:  # noqa: BLE001 - already finished or gone
                pass

    def close(self) -> None:
        if self._started:
            ray.shutdown()


def make_ray(options: dict[str, Any]) -> RayExecutor:
    return RayExecutor(options)
