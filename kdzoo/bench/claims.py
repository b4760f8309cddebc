"""Who runs a bench cell: claim files, and workers that do not outlive their bench.

A claim is an exclusive lock on ``CELL.claim.lock`` beside the cell's directory (``filelock``: an OS
lock on Linux, macOS and Windows), held for as long as a process runs the cell. The OS drops the lock
when its holder dies (even by ``kill -9``), so a claim can never go stale on one host. While it holds
the lock, the owner keeps ``CELL.claim``: its pid, host and a heartbeat (the file's modification time,
touched every few seconds) so that a person, or a bench on another host sharing the folder, can see who
runs what.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

HEARTBEAT_SECONDS = 5.0


class Claim:
    """An exclusive, non-blocking claim on one cell; use as a context manager.

    Args:
        path: the claim file.
        wait: block until the current owner is done instead of giving up at once.

    Attributes:
        acquired: whether this process holds the claim.
        owner: the current owner's record (pid, host, started) when it was not acquired.
    """

    def __init__(self, path: str | Path, wait: bool = False) -> None:
        self.path = Path(path)
        self.wait = wait
        self.acquired = False
        self.owner: dict[str, Any] | None = None
        self._lock: FileLock | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def __enter__(self) -> Claim:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.path.with_name(f"{self.path.name}.lock"), thread_local=False)
        try:
            lock.acquire(timeout=-1 if self.wait else 0)
        except Timeout:
            try:
                self.owner = json.loads(self.path.read_text() or "{}")
            except (OSError, ValueError):  # the owner has not written its record yet, or just removed it
                self.owner = {}
            return self
        self.path.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}))
        self._lock, self.acquired = lock, True
        self._beat = threading.Thread(target=self._heartbeat, name="kdzoo-claim-heartbeat", daemon=True)
        self._beat.start()
        return self

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                os.utime(self.path)
            except OSError:
                return

    def __exit__(self, *exc: Any) -> None:
        if not self.acquired:
            return
        self._stop.set()
        try:
            self.path.unlink(missing_ok=True)  # unlink while still holding the lock: no one reads a dead record
        finally:
            self._lock.release()
            self.acquired = False


def exit_with_parent(parent_pid: int, poll_seconds: float = 0.5) -> None:
    """In a worker process: exit at once when the bench that started it dies (even by ``kill -9``).

    The cell it was running is left as a killed run would be (its last checkpoint, its claim
    released by the kernel), so the next bench resumes it.
    """

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(poll_seconds)

    threading.Thread(target=watch, name="kdzoo-parent-watch", daemon=True).start()


__all__ = ["Claim", "exit_with_parent"]
