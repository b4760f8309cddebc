"""Checksummed cache files: the teacher-output cache's entries and the view store's shards.

Each is a safetensors file whose header carries the SHA-256 of the whole file
(:func:`kdzoo.integrity.safetensors_bytes`, as exported students and cached teachers), written
atomically. Such entries can always be rebuilt, so a file that does not parse, carries no digest or
does not match it raises :class:`~kdzoo.integrity.DamagedFile`, and the caller moves it aside
(:func:`~kdzoo.integrity.move_aside`) and fills it again.
"""

from __future__ import annotations

from pathlib import Path

from safetensors import safe_open
from torch import Tensor

from ..atomic import atomic_path
from ..integrity import SAFETENSORS_KEY, DamagedFile, safetensors_bytes, verify_safetensors


def save_sealed(tensors: dict[str, Tensor], path: str | Path, meta: dict[str, str] | None = None) -> None:
    """Write ``tensors`` (and string ``meta``) atomically, with the file's SHA-256 in its header."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        tmp.write_bytes(safetensors_bytes(tensors, dict(meta or {})))


def load_sealed(path: str | Path, role: str = "cache entry") -> tuple[dict[str, Tensor], dict[str, str]]:
    """``(tensors, meta)`` of a file written by :func:`save_sealed`, checked against its SHA-256.

    Raises:
        DamagedFile: the file does not parse, carries no digest, or its bytes do not match it.
    """
    if not verify_safetensors(path, role):
        raise DamagedFile(f"{role} {str(path)!r} is damaged (it carries no SHA-256)", path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for a file it cannot parse
        raise DamagedFile(f"{role} {str(path)!r} is damaged (unreadable: {type(exc).__name__})", path) from None
    meta.pop(SAFETENSORS_KEY, None)
    return tensors, meta


def damage(exc: DamagedFile) -> str:
    """What is wrong with a damaged file, from its error (the part in parentheses)."""
    return str(exc).rpartition("(")[2].rstrip(")") or "damaged"


__all__ = ["damage", "load_sealed", "save_sealed"]
