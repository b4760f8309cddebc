"""Where kdzoo writes: the cache root and run directories, created so that no two processes share one.

A run directory is created with an exclusive ``mkdir`` (it fails if the folder exists), so two
runs can never write into the same folder; default names carry the time, the process id and a
random suffix. ``status.json`` in it says what state the run is in (``running``, ``interrupted``,
``failed``, ``done``) and which process owns it, so ``--resume`` continues only runs that can
continue and never one that another live process is writing.

One process owns a run folder at a time: it holds ``RUN/.owner.lock`` (:func:`own_run`, a
``filelock`` lock the kernel drops when its holder dies, even by ``kill -9``) from before anything in
the folder is read until the run ends, so two ``--resume`` of one run can never both train it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .atomic import write_text
from .contract.errors import ConfigError

STATUS = "status.json"
OWNER_LOCK = ".owner.lock"


def cache_root() -> Path:
    """``$KDZOO_CACHE`` or ``~/.cache/kdzoo``: cached teachers, teacher outputs and the run index."""
    root = Path(os.environ.get("KDZOO_CACHE") or Path.home() / ".cache" / "kdzoo")
    if root.exists() and not root.is_dir():
        raise ConfigError(f"KDZOO_CACHE {str(root)!r} is a file, not a folder; point it at a folder (or unset it)")
    return root


def check_cache_root() -> Path:
    """:func:`cache_root`, created now and writable: a cache that cannot be used fails before a run starts."""
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"KDZOO_CACHE {str(root)!r} cannot be created ({exc.strerror or exc}); point it at a folder "
                          "you can write (or unset it)") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise ConfigError(f"KDZOO_CACHE {str(root)!r} is not writable; point it at a folder you can write (or unset it)")
    return root


def check_out_dir(out: str | Path) -> Path:
    """``--out`` must be a folder (or not exist yet): never a file."""
    path = Path(out)
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"--out {str(out)!r}: {str(parent)!r} is a file, not a folder")
            break
    return path


def unique_suffix() -> str:
    """Time to the second, process id and 16 random bits: distinct across parallel processes."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}{secrets.token_hex(2)}"


def create_run_dir(out: str | Path, name: str | None, default_stem: str) -> Path:
    """Create a new run directory exclusively and return it.

    Args:
        out: the parent folder (created if missing).
        name: the user's ``--name`` (must not exist yet), or ``None`` for ``default_stem`` plus a
            unique suffix (retried on the rare collision).
        default_stem: the readable part of a default name (strategy, student, data).

    Raises:
        ConfigError: ``out`` is a file, or the named directory already exists.
    """
    parent = check_out_dir(out)
    missing = [p for p in (parent, *parent.parents) if not p.exists()]
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {str(out)!r}: cannot create it ({exc.strerror})") from None
    for _ in range(20):
        path = parent / (name or f"{default_stem}_{unique_suffix()}")
        try:
            path.mkdir()
        except FileExistsError:
            if name is not None:
                raise ConfigError(f"run directory {str(path)!r} already exists; pass --resume {path} or another --name") \
                    from None
            continue
        except OSError as exc:  # e.g. --out /proc/self: a folder that holds no new folders
            raise ConfigError(f"--out {str(out)!r}: cannot create a run folder in it ({exc.strerror or exc})") from None
        try:
            write_status(path, "running")
        except OSError as exc:
            remove_run_dir(path)
            raise ConfigError(f"--out {str(out)!r}: cannot write into a run folder there ({exc.strerror or exc})") \
                from None
        CREATED_PARENTS[path] = missing
        return path
    raise ConfigError(f"could not find a free run directory name under {str(parent)!r}")


CREATED_PARENTS: dict[Path, list[Path]] = {}  # run dir -> the folders above it that creating it made


def remove_run_dir(path: Path) -> None:
    """Undo :func:`create_run_dir`: the run directory and any parent folder it had to create."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    for parent in CREATED_PARENTS.pop(path, []):
        try:
            parent.rmdir()  # only while empty: another run may have written there since
        except OSError:
            break


def write_status(run_dir: Path, state: str, **extra: Any) -> None:
    """Record the run's state and owner (atomically)."""
    info = {"state": state, "pid": os.getpid(), "host": socket.gethostname(), "updated": time.time(), **extra}
    write_text(run_dir / STATUS, json.dumps(info, indent=2, default=str))


def read_status(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / STATUS).read_text())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True  # no /proc: trust kill(0)


def owned_elsewhere(status: dict[str, Any] | None) -> bool:
    """True when a live process other than this one says it is running this directory."""
    return bool(status and status.get("state") == "running" and status.get("host") == socket.gethostname()
                and status.get("pid") != os.getpid() and pid_alive(int(status.get("pid", 0))))


def check_resumable(run_dir: Path) -> None:
    """Refuse to resume a run that failed or that a live process is still writing."""
    status = read_status(run_dir)
    if status is None:
        return  # written by an older kdzoo, or killed before its first status: resume it
    if status.get("state") == "failed":
        raise ConfigError(f"run {str(run_dir)!r} failed ({status.get('error', 'no reason recorded')}); it cannot be "
                          "resumed: fix the cause and start a new run")
    if status.get("state") == "done":
        return
    if owned_elsewhere(status):
        raise ConfigError(f"run {str(run_dir)!r} is being written by process {status['pid']}; wait for it to finish")


@contextlib.contextmanager
def own_run(run_dir: str | Path) -> Iterator[None]:
    """Own ``run_dir`` for the whole block: hold its ``.owner.lock``, or refuse in one line.

    Taken before anything in the folder is read (``--resume``) or right after the folder is created
    (a new run), and held to the end, so no second process trains the same run. Not waiting is the
    point: a second owner is refused, never queued behind the first.

    Raises:
        ConfigError: another process holds the lock, or the folder cannot hold a lock file.
    """
    lock = FileLock(str(Path(run_dir) / OWNER_LOCK), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        status = read_status(Path(run_dir)) or {}
        who = (f"process {status['pid']} on {status.get('host', '?')}" if status.get("state") == "running"
               and "pid" in status else "another process")
        raise ConfigError(f"run {str(run_dir)!r} is owned by {who} (it holds {OWNER_LOCK}); wait for it to finish "
                          "before resuming it") from None
    except OSError as exc:
        raise ConfigError(f"run {str(run_dir)!r}: cannot take its lock {OWNER_LOCK} ({exc.strerror or exc})") from None
    try:
        yield
    finally:
        lock.release()


def sweep_temp_files(folder: Path) -> list[Path]:
    """Remove checkpoint/summary temp files (``.NAME.tmpPID``) left by killed writers under ``folder``."""
    removed = []
    for tmp in folder.rglob(".*.tmp*"):
        pid = tmp.name.rpartition(".tmp")[2]
        if tmp.is_file() and (not pid.isdigit() or int(pid) == os.getpid() or not pid_alive(int(pid))):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


__all__ = ["cache_root", "check_cache_root", "check_out_dir", "check_resumable", "create_run_dir", "own_run", "read_status", "remove_run_dir",
           "sweep_temp_files", "write_status"]
