"""A bench cell's run: :func:`run_cell` (the local pool's, with its ``flock`` claim) and the executor task.

:func:`run_cell_task` is what ``slurm`` and ``ray`` execute (and ``local`` in a fresh process): it
records the attempt (host, pid, ``SLURM_JOB_ID``, Ray node id) in ``cells/KEY.ran.jsonl``, checks that
the code it is about to run still has the cell's key (code edited while the cell waited in a queue
must not run under the old key), then runs or resumes the cell from its checkpoint. A cell asking
for more than one process runs under ``torchrun`` (this module's ``__main__``), inside the job.

Run as ``python -m kdzoo.bench.executors.cell PAYLOAD.json``: one rank of such a ``torchrun`` cell.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from ...config import make_config
from ...contract.errors import ConfigError, KdzooError
from ...paths import read_status, write_status
from ...train.checkpoint import load_checkpoint
from ..claims import Claim
from ...zoo.plugins import load_zoo

OWNED = type("Owned", (), {"acquired": True})()  # a cell a scheduler owns needs no claim of its own


class StaleCell(ConfigError):
    """The code changed between submission and start: the cell's key is no longer the one it was queued under."""


def ran_file(config_data: dict[str, Any]) -> Path:
    """``cells/KEY.ran.jsonl``: one line per attempt at the cell (where and when it started)."""
    return Path(config_data["out"]) / f"{config_data['name']}.ran.jsonl"


def placement(executor: str) -> dict[str, Any]:
    """Where this process runs: host, pid, and the scheduler's own ids (``SLURM_JOB_ID``, Ray node and task)."""
    where: dict[str, Any] = {"executor": executor, "host": socket.gethostname(), "pid": os.getpid(),
                             "started": time.time()}
    if os.environ.get("SLURM_JOB_ID"):
        where["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
        where["slurm_restart_count"] = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
    if "ray" in sys.modules:  # only inside a Ray worker is Ray already imported
        import ray

        if ray.is_initialized():
            context = ray.get_runtime_context()
            where["ray_node_id"] = context.get_node_id()
            where["ray_task_id"] = context.get_task_id()
    return where


def checkpoint_steps(config_data: dict[str, Any]) -> dict[str, int]:
    """``{seed folder: step}`` of the cell's checkpoints: where this attempt continues (empty: from the start)."""
    steps = {}
    for path in sorted((Path(config_data["out"]) / str(config_data["name"])).glob("seed-*/checkpoint.pt")):
        try:  # checksummed: the step of a checkpoint that verifies (a cell's checkpoints are small)
            steps[path.parent.name] = int(load_checkpoint(path)["step"])
        except (KdzooError, OSError, KeyError, TypeError, ValueError):  # damaged: the trainer's to report
            continue
    return steps


def attempts(config_data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every recorded attempt at a cell, oldest first."""
    try:
        lines = ran_file(config_data).read_text().splitlines()
    except OSError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


def _record(config_data: dict[str, Any], where: dict[str, Any]) -> None:
    path = ran_file(config_data)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:  # one short line per attempt: appends do not interleave
        handle.write(json.dumps(where) + "\n")


def check_identity(config_data: dict[str, Any], key: str) -> None:
    """Refuse to run a cell whose code no longer has the key it was queued under."""
    from ...train.effective import cell_key  # lazy: start-up cost (torch)

    now = cell_key(make_config(config_data), load_zoo())
    if now != key:
        raise StaleCell(f"cell {key}: the code changed while it waited (its key is now {now}); run the same "
                        "kdzoo bench command again to run it under its new key")


def run_cell_task(config_data: dict[str, Any], key: str, executor: str, log: str | None = None,
                  processes: int = 1) -> dict[str, Any]:
    """Run (or resume) one bench cell here; returns where it ran. Failures are appended to ``log``."""
    where = placement(executor)
    where["resume_from"] = checkpoint_steps(config_data)
    _record(config_data, where)
    try:
        check_identity(config_data, key)
        if processes > 1:
            _run_torchrun(config_data, processes)
        else:
            run_cell(config_data, claim=False)  # the scheduler owns the cell: no flock across machines
    except BaseException:
        if log:
            Path(log).parent.mkdir(parents=True, exist_ok=True)
            with open(log, "a") as handle:
                handle.write(f"--- cell {key} on {where['host']} (pid {where['pid']}) failed:\n"
                             f"{traceback.format_exc()}")
        raise
    return where


def run_cell(config_data: dict, claim: bool = True) -> str:
    """Run one cell (in this or a worker process) unless another live process has claimed it.

    An interrupted cell (killed, or stopped by a signal) is resumed from its checkpoint; a cell
    that failed before, or was killed before its config was written, is started again.
    ``claim=False``: a scheduler (Slurm, Ray) owns the cell, so no ``flock`` claim is taken.

    Returns:
        ``"done"``, or ``"busy"`` when another process holds the cell's claim.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from ...train.runs import distill  # lazy: start-up cost: the run driver (torch, timm), when a cell runs

    config = make_config(config_data)
    cell_dir = Path(config.out) / str(config.name)
    with Claim(cell_dir.parent / f"{cell_dir.name}.claim") if claim else contextlib.nullcontext(OWNED) as held:
        if not held.acquired:
            return "busy"
        if resumable(cell_dir):
            distill(None, resume=cell_dir, log=_quiet)
        else:
            distill(config, log=_quiet)
    return "done"


def _quiet(*args: Any, **kwargs: Any) -> None:
    """A cell's log: the bench shows one progress line, not each cell's."""


def resumable(cell_dir: Path) -> bool:
    """Whether the cell continues from its folder (its config was written and it did not fail); a folder
    that cannot continue is removed, so the cell starts afresh. The caller owns the cell."""
    if not cell_dir.exists():
        return False
    status = read_status(cell_dir) or {}
    if (cell_dir / "config.yaml").is_file() and status.get("state") in (None, "running", "interrupted", "done"):
        write_status(cell_dir, "interrupted")  # we own the cell: whoever wrote "running" is gone
        return True
    shutil.rmtree(cell_dir)
    return False


def _run_torchrun(config_data: dict[str, Any], processes: int) -> None:
    """The cell under ``torchrun`` (DDP, one process per GPU, gloo on CPU), inside this job's allocation.

    Whether it resumes is settled here, once, before any rank starts (ranks must not race over the folder).
    """
    cell_dir = Path(config_data["out"]) / str(config_data["name"])
    payload = cell_dir.parent / f"{cell_dir.name}.torchrun.json"
    payload.write_text(json.dumps({"config": config_data, "resume": resumable(cell_dir)}))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "kdzoo.bench.executors.cell", str(payload)]
    done = subprocess.run(command, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"torchrun with {processes} processes exited with {done.returncode}")


def _rank_main(argv: list[str]) -> int:
    """One ``torchrun`` rank: every rank runs the same cell (kdzoo's DDP path)."""
    from ...train.runs import distill  # lazy: start-up cost (torch)

    payload = json.loads(Path(argv[0]).read_text())
    config = make_config(payload["config"])
    if payload["resume"]:
        distill(None, resume=Path(config.out) / str(config.name), log=_quiet)
    else:
        distill(config, log=_quiet)
    return 0


if __name__ == "__main__":
    sys.exit(_rank_main(sys.argv[1:]))
