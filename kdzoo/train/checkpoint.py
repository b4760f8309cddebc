"""Atomic, checksummed checkpoints: the last two are kept, each verified against its SHA-256 when read.

A run's ``checkpoint.pt`` is written to a temporary sibling and renamed over the target; the one it
replaces becomes ``checkpoint.prev.pt``, so a damaged or removed latest checkpoint still leaves a
run resumable, from the previous one (:func:`resume_point`). Damage is never loaded: see
:mod:`kdzoo.integrity`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..atomic import atomic_path, write_text  # re-exported: the old import path of both
from ..contract.errors import ConfigError
from ..integrity import DamagedFile, load_torch, save_torch

CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"


def save_checkpoint(state: dict[str, Any], path: str | Path, keep_previous: bool = False) -> None:
    """``torch.save`` ``state`` atomically with its SHA-256 (only tensors and plain data, loadable with weights_only).

    Args:
        keep_previous: keep the checkpoint it replaces as ``checkpoint.prev.pt`` (a run's checkpoints).
    """
    path = Path(path)
    if keep_previous and path.exists():
        os.replace(path, path.with_name(PREVIOUS))  # a kill before the next rename leaves prev to resume from
    save_torch(state, path)


def load_checkpoint(path: str | Path, role: str = "checkpoint") -> dict[str, Any]:
    """Load a checkpoint as data (``weights_only=True``: no code is run), its SHA-256 verified.

    Raises:
        DamagedFile: the file does not match its digest or is not a torch file of data.
    """
    return load_torch(path, role)


def resume_point(seed_dir: Path) -> Path | None:
    """The checkpoint a resumed seed continues from: ``checkpoint.pt``, else the kept previous one."""
    for name in (CHECKPOINT, PREVIOUS):
        if (seed_dir / name).is_file():
            return seed_dir / name
    return None


def load_resume_point(seed_dir: Path) -> dict[str, Any]:
    """Load :func:`resume_point`; a damaged latest checkpoint is a one-line error that says how to go on.

    The run stays resumable: restore the file, or remove it to continue from ``checkpoint.prev.pt``.
    """
    path = resume_point(seed_dir)
    if path is None:
        raise ConfigError(f"{str(seed_dir)!r} holds no checkpoint to resume from")
    try:
        return load_checkpoint(path, "run checkpoint")
    except DamagedFile as exc:
        previous = seed_dir / PREVIOUS
        if path.name == CHECKPOINT and previous.is_file():
            how = f"restore it, or remove it to resume from {PREVIOUS}"
        else:
            how = "restore it, or remove it to train this seed again from the start"
        raise DamagedFile(f"{exc}; cannot resume: {how}", path) from None


__all__ = ["atomic_path", "load_checkpoint", "load_resume_point", "resume_point", "save_checkpoint", "write_text"]
