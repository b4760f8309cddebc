"""``slurm``: one Slurm job per task, submitted with submitit (``pip install 'kdzoo[slurm]'``).

Each task is its own ``sbatch`` job with the task's resources (CPUs, GPUs, memory, time in minutes,
partition, account, extra ``sbatch`` flags), marked ``--requeue``. Slurm owns the cell while the job
exists: nothing relies on ``flock`` across machines. A job that is preempted or reaches its time
limit gets submitit's ``USR2`` warning, is requeued and, when it starts again, resumes the cell from
its last checkpoint (as does a job requeued by hand with ``scontrol requeue``).

Job states come from ``squeue -t all`` (no accounting database is needed: ``sacct`` is never used);
a job that has left the queue is judged by the result file submitit writes when the task returns.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import submitit  # an optional dependency: this module is imported only when the slurm executor is chosen
from submitit.core.utils import JobPaths, pickle_load

from .base import Executor, Handle, Task, TaskState

QUEUED = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED",
          "RESIZING", "REVOKED", "SIGNALING", "STAGE_OUT", "SPECIAL_EXIT"}
RUNNING = {"RUNNING", "COMPLETING"}


class Requeueable(submitit.helpers.Checkpointable):
    """A task submitit may requeue on preemption or time-out: it runs the same call again, which resumes
    the cell from its own checkpoint (``Checkpointable.checkpoint`` resubmits the same arguments)."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)


def sbatch_flags(flags: list[str]) -> dict[str, Any]:
    """``["--qos=high", "--exclusive"]`` as submitit's ``additional_parameters`` (``{"qos": "high", "exclusive": True}``)."""
    out: dict[str, Any] = {}
    for flag in flags:
        name, sep, value = flag.lstrip("-").partition("=")
        out[name] = value if sep else True
    return out


class SlurmExecutor(Executor):
    """One ``sbatch`` job per task (submitit), states from ``squeue``, cancelled with ``scancel``."""

    name = "slurm"
    detachable = True

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    def submit(self, tasks: list[Task]) -> list[Handle]:
        handles = []
        for task in tasks:
            r = task.resources
            folder = Path(task.log_dir)
            executor = submitit.SlurmExecutor(folder=str(folder / "%j"), max_num_timeout=3, python=sys.executable)
            extra = {"requeue": True, **sbatch_flags(r.sbatch)}
            executor.update_parameters(
                job_name=f"kdzoo-{task.key}", nodes=1, ntasks_per_node=1, cpus_per_task=r.cpus,
                gpus_per_node=r.gpus or None, mem=r.mem, time=r.time, partition=r.partition, account=r.account,
                signal_delay_s=int(self.options.get("signal_delay_s", 90)), additional_parameters=extra)
            job = executor.submit(Requeueable(task.fn), *task.args)
            handles.append(Handle(task.key, self.name, str(job.job_id), str(job.paths.stderr),
                                  {"folder": str(folder / "%j")}, job))
        return handles

    def _queue(self) -> dict[str, str]:
        """``{job id: state}`` of every job Slurm still lists (finished ones stay listed for ``MinJobAge``)."""
        done = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i %T"], capture_output=True, text=True,
                              timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"squeue failed: {' '.join(done.stderr.split()) or done.returncode}")
        return dict(line.split()[:2] for line in done.stdout.splitlines() if len(line.split()) >= 2)

    def poll(self, handles: list[Handle]) -> dict[str, TaskState]:
        queue = self._queue()
        states = {}
        for handle in handles:
            slurm_state = queue.get(handle.id)
            if slurm_state in QUEUED:
                states[handle.key] = TaskState("queued")
            elif slurm_state in RUNNING:
                states[handle.key] = TaskState("running")
            else:
                states[handle.key] = self._finished(handle, slurm_state)
        return states

    def _finished(self, handle: Handle, slurm_state: str | None) -> TaskState:
        result = JobPaths(handle.info["folder"], job_id=handle.id, task_id=0).result_pickle
        where = f"slurm job {handle.id} (log {handle.log})"
        try:
            outcome, value = pickle_load(result)
        except (OSError, EOFError, ValueError):
            if slurm_state == "COMPLETED":  # the result file may land a moment after Slurm marks the job done
                return TaskState("running")
            return TaskState("failed", error=f"{where} ended {slurm_state or 'without a state'} with no result")
        if outcome == "success" and slurm_state in (None, "COMPLETED"):
            return TaskState("done", value)
        if outcome == "success":
            return TaskState("failed", error=f"{where} ended {slurm_state}")
        last = [line for line in str(value).strip().splitlines() if line.strip()]
        return TaskState("failed", error=f"{where}: {last[-1] if last else 'failed'}")

    def cancel(self, handles: list[Handle]) -> None:
        if handles:
            subprocess.run(["scancel", *[h.id for h in handles]], capture_output=True, timeout=60)

    def attach(self, record: dict[str, Any]) -> Handle | None:
        if not (record.get("info") or {}).get("folder"):
            return None
        handle = Handle(record["key"], self.name, str(record["id"]), record.get("log"), dict(record["info"]))
        state = self._queue().get(handle.id)
        if state in QUEUED or state in RUNNING:
            return handle
        # ended: collect a success; a cancelled or failed job is submitted again (and resumes its cell)
        return handle if self._finished(handle, state).state == "done" else None


def make_slurm(options: dict[str, Any]) -> SlurmExecutor:
    return SlurmExecutor(options)


__all__ = ["Requeueable", "SlurmExecutor", "make_slurm", "sbatch_flags"]
