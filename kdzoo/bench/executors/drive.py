"""A bench's cells on a scheduler: submit, follow, cancel, detach, collect and list.

The bench keeps one file, ``BENCH/executor-jobs.json``, naming the job (or task) each submitted
cell went to: a later ``kdzoo bench`` with the same suite and folder finds jobs a ``--detach``
command left running and waits for them instead of submitting them again, and ``--status`` lists
each cell as queued, running (with its job or task id), done or failed. A cell's record goes when
its job ends; a finished cell is known by its result in the cell folder, as with ``local``.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from ...config import to_dict
from ...contract.errors import ConfigError, Interrupted, unknown
from ...paths import read_status
from . import NOT_APPLICABLE, Executor, Handle, Resources, Task, TaskState, make_executor
from .cell import attempts, run_cell_task

JOBS_FILE = "executor-jobs.json"
OPTION_KEYS = {"address", "retries", "signal_delay_s", "poll_seconds", "resources"}


def executor_choice(suite: dict[str, Any], name: str | None, options: dict[str, Any] | None) -> tuple[str, dict]:
    """The executor's name and options: the command line's over the suite's ``executor:`` and
    ``executor_options:`` (``address``, ``retries``, ``resources: {...}`` for every cell), else ``local``."""
    chosen = name or suite.get("executor") or "local"
    merged = dict(suite.get("executor_options") or {})
    for key in merged:
        if key not in OPTION_KEYS:
            raise unknown("key in executor_options", key, OPTION_KEYS)
    for key, value in (options or {}).items():
        if value is not None:
            merged[key] = value
    return chosen, merged


def cell_resources(cell: Any, options: dict[str, Any], overrides: dict[str, Any]) -> Resources:
    """A cell's resources: the suite's ``executor_options.resources``, its task's ``resources``, the command line."""
    base = Resources.from_dict(options.get("resources"), "executor_options.resources")
    task = base.merged(cell.resources) if cell.resources else base
    return task.merged(overrides)


def cell_task(cell: Any, executor: str, out: Path, resources: Resources) -> Task:
    log_dir = out / "executor" / executor
    log = str(log_dir / f"{cell.key}.log")
    return Task(cell.key, cell.label, run_cell_task, (to_dict(cell.config), cell.key, executor, log,
                                                      resources.processes), resources, log_dir)


def load_records(out: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads((out / JOBS_FILE).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def save_records(out: Path, records: dict[str, dict[str, Any]]) -> None:
    """Replace the jobs file atomically (removed when no job is left)."""
    path = out / JOBS_FILE
    if not records:
        path.unlink(missing_ok=True)
        return
    out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(records, indent=1))
    os.replace(tmp, path)


def open_executor(name: str, options: dict[str, Any], zoo: Any, detach: bool = False) -> Executor | None:
    """The executor to hand cells to; ``None`` for ``local`` (the bench's own pool runs them)."""
    if name == "local":
        if detach:
            raise ConfigError("--detach: the local executor runs cells inside this command; use --executor slurm "
                              "to leave jobs running")
        return None
    return make_executor(name, options, zoo)


def started_since(cell: Any, since: float) -> dict[str, Any] | None:
    """The cell's latest recorded attempt if it began after ``since`` (its job started), else ``None``."""
    runs = attempts(to_dict(cell.config))
    return runs[-1] if runs and runs[-1].get("started", 0) >= since - 1 else None


def describe(handle: Handle, state: TaskState, cell: Any) -> str:
    """``queued (slurm job 12)``, ``running (ray task ab12 on node ...)``, ``failed (...)``."""
    what = f"{handle.executor} {'job' if handle.executor == 'slurm' else 'task'} {handle.id}"
    if state.state == "failed":
        return f"failed ({state.error})"
    if state.state == "queued":
        attempt = started_since(cell, handle.info.get("submitted", 0))
        if attempt is None:
            return f"queued ({what})"
        return f"running ({what} on {attempt.get('host')})"
    if state.state == "running":
        return f"running ({what})"
    return state.state


def run_on_executor(executor: Executor, todo: list[Any], out: Path, options: dict[str, Any],
                    overrides: dict[str, Any], bar: Any, errors: dict[str, str], *, detach: bool = False,
                    log: Any = print) -> bool:
    """Run ``todo`` on ``executor`` and wait for every cell (errors by cell key, as the local pool records them).

    Jobs a detached command left running are waited for, not submitted again. SIGINT/SIGTERM cancel
    the jobs this command submitted (never those of an earlier command) and raise ``Interrupted``.

    Returns:
        ``True`` when every cell has ended; ``False`` when ``detach`` left them running.
    """
    if detach and not executor.detachable:
        raise ConfigError(f"--detach: executor {executor.name!r} cannot leave its tasks running without this "
                          "command (Ray tasks end with their driver); use --executor slurm, or run without --detach")
    records = load_records(out)
    cells = {cell.key: cell for cell in todo}
    pending: dict[str, Handle] = {}
    for cell in todo:
        record = records.get(cell.key)
        if record and record.get("executor") == executor.name:
            handle = executor.attach(record)
            if handle is not None:
                pending[cell.key] = handle
    if pending:
        log(f"{len(pending)} cells already submitted to {executor.name} by an earlier command: waiting for them")
    new = [cell for cell in todo if cell.key not in pending]
    mine = executor.submit([cell_task(c, executor.name, out, cell_resources(c, options, overrides)) for c in new])
    now = time.time()
    for handle in mine:
        handle.info["submitted"] = now
        pending[handle.key] = handle
    records = {k: v for k, v in records.items() if k in pending}
    save_records(out, {**records, **{h.key: h.record() for h in mine}})
    if detach:
        ids = ", ".join(h.id for h in mine[:5]) + (", ..." if len(mine) > 5 else "")
        log(f"{len(mine)} cells submitted to {executor.name} ({ids}); run the same command again to collect them, "
            f"or with --status to follow them")
        return False
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    poll_seconds = float(options.get("poll_seconds", 1.0))
    try:
        while pending and not received:
            for key, state in executor.poll(list(pending.values())).items():
                if state.state not in ("done", "failed"):
                    continue
                pending.pop(key)
                if state.state == "failed":
                    text = " ".join(str(state.error).split())
                    errors[key] = f"{NOT_APPLICABLE}{text}" if "NotApplicable" in text else text
                if bar is not None:
                    bar.set_postfix_str(cells[key].label, refresh=False)
                    bar.update(1)
            if pending and not received:
                time.sleep(poll_seconds)
        if received:
            ours = [h for h in mine if h.key in pending]
            executor.cancel(ours)
            pending = {k: h for k, h in pending.items() if h not in ours}
            raise Interrupted(received[0], hint=f"{len(ours)} {executor.name} jobs cancelled; run the same kdzoo "
                                                "bench command again to resume")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        left = load_records(out)
        save_records(out, {k: v for k, v in left.items() if k in pending})
    return True


def cell_states(cells: list[Any], out: Path, executor: Executor | None, finished: Any) -> list[str]:
    """Each cell's state for ``--status``: done, queued/running (job or task id), failed (why), to run.

    ``finished(cell)``: whether the cell has its result (:func:`kdzoo.bench.cell_results.cell_summary`).
    """
    records = load_records(out)
    handles: dict[str, Handle] = {}
    if executor is not None:
        for key, record in records.items():
            if record.get("executor") == executor.name:
                handle = executor.attach(record)
                if handle is not None:
                    handles[key] = handle
    polled = executor.poll(list(handles.values())) if handles else {}
    states = []
    for cell in cells:
        record = records.get(cell.key)
        if cell.missing:
            states.append("skipped (not installed)")
        elif finished(cell):
            states.append("done")
        elif cell.key in polled:
            states.append(describe(handles[cell.key], polled[cell.key], cell))
        elif record is not None:  # a driver elsewhere holds it (Ray), or the scheduler forgot the job
            handle = Handle(cell.key, record["executor"], str(record["id"]), record.get("log"), record.get("info", {}))
            states.append(describe(handle, TaskState("queued"), cell))
        elif _failed_before(cell):
            states.append("failed (run the bench again to retry it)")
        else:
            states.append("to run")
    return states


def _failed_before(cell: Any) -> bool:
    status = read_status(Path(cell.config.out) / cell.key) or {}
    return status.get("state") == "failed"


__all__ = ["JOBS_FILE", "cell_states", "cell_task", "executor_choice", "load_records", "open_executor",
           "run_on_executor"]
