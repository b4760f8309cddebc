"""Checksummed cache files: safetensors whose metadata carries the SHA-256 of every tensor byte.

Used by the teacher-output cache and the view store (entries that kdzoo can always rebuild). A
file that does not parse, or whose tensors do not match the checksum written with them, is
:class:`DamagedEntry`; :func:`set_aside` moves it out of the way so the caller rebuilds it.

(A small local helper: the integrity work on run checkpoints brings its own; unify at merge.)
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from .checkpoint import atomic_path

DIGEST_KEY = "kdzoo.sha256"


class DamagedEntry(Exception):
    """A cache file that cannot be trusted (unreadable, or its checksum does not match)."""


def tensors_digest(tensors: dict[str, Tensor], meta: dict[str, str] | None = None) -> str:
    """SHA-256 of names, dtypes, shapes and bytes of ``tensors`` (sorted by name) and of ``meta``."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    for key in sorted(meta or {}):
        h.update(f"{key}={meta[key]}\n".encode())
    return h.hexdigest()


def save_sealed(tensors: dict[str, Tensor], path: str | Path, meta: dict[str, str] | None = None) -> None:
    """Write ``tensors`` (and string ``meta``) atomically, with their SHA-256 in the file's metadata."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = dict(meta or {})
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={**meta, DIGEST_KEY: tensors_digest(tensors, meta)})


def load_sealed(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """``(tensors, meta)`` of a file written by :func:`save_sealed`, checked against its SHA-256.

    Raises:
        DamagedEntry: the file does not parse, carries no checksum, or its content does not match it.
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises several types for torn or garbage files
        raise DamagedEntry(f"unreadable ({type(exc).__name__})") from None
    expected = meta.pop(DIGEST_KEY, None)
    if expected is None:
        raise DamagedEntry("no checksum")
    if tensors_digest(tensors, meta) != expected:
        raise DamagedEntry("checksum mismatch")
    return tensors, meta


def set_aside(path: str | Path) -> Path:
    """Move a damaged file to ``NAME.damaged-<time>-<pid>`` beside it (kept for inspection); returns that path."""
    path = Path(path)
    target = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    os.replace(path, target)
    return target


__all__ = ["DamagedEntry", "load_sealed", "save_sealed", "set_aside", "tensors_digest"]
