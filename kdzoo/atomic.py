"""Atomic file writing: the one place kdzoo writes a file so that a reader never sees it half-written.

Owns :func:`atomic_path` (a temporary sibling renamed over the target on success, removed on error)
and :func:`write_text` (a text file through it). Everything that writes a file others read while it
may be rewritten uses these: run status (:mod:`kdzoo.paths`), checkpoints and checksummed artefacts
(:mod:`kdzoo.integrity`), exported weights (:mod:`kdzoo.models`), results and reports (:mod:`kdzoo.bench`).
It sits on the bottom floor and imports nothing from kdzoo.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``path`` atomically, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # ordinary permissions, whatever the writer used (some write 0600)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


__all__ = ["atomic_path", "write_text"]
