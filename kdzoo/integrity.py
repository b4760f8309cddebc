"""Checksummed files: every artefact kdzoo writes carries its SHA-256, and is verified when read.

Damage (zeroed or overwritten bytes, truncation, a file swapped for garbage or for a pickle that
holds code) is never loaded as if it were data: it is a :class:`DamagedFile`, a one-line user
error, which a cache answers by moving the file aside and rebuilding it (:func:`move_aside`), and a
run answers by refusing to resume until the file is restored or removed.

Three forms, one per kind of file, each keeping the digest in the same file as the content so the
two are written in one atomic rename (nothing can pair new content with an old digest):

* torch files (run checkpoints, teacher-output caches): :func:`save_torch` / :func:`load_torch`
  wrap the ``torch.save`` bytes with their digest (``{"format", "sha256", "payload"}``);
* safetensors files (exported students, cached teachers): :func:`safetensors_bytes` puts the
  digest of the whole file in the header metadata (computed with 64 zeros in its place), and
  :func:`verify_safetensors` checks it;
* any other file (a raw array store, say): :func:`write_digest` / :func:`verify_digest` keep a
  ``NAME.sha256`` sidecar. A sidecar cannot be renamed together with its file, so write the file's
  content under a new name, then the sidecar, then rename; a file older than its sidecar reads as
  damaged, which for a cache only costs a rebuild.

Files written before digests existed carry none and are read as they are.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import time
from pathlib import Path
from typing import Any

from .atomic import atomic_path  # re-exported (__all__): its old import path
from .contract.errors import ConfigError

TORCH_FORMAT = "kdzoo-checked-1"
SAFETENSORS_KEY = "kdzoo_sha256"
_PLACEHOLDER = "0" * 64


class DamagedFile(ConfigError):
    """A file whose content does not match its recorded SHA-256, or that cannot be read as what it is.

    Attributes:
        path: the damaged file.
    """

    def __init__(self, message: str, path: str | Path) -> None:
        super().__init__(message)
        self.path = Path(path)


def sha256_bytes(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def move_aside(path: str | Path) -> Path:
    """Rename a damaged file to ``NAME.damaged-TIME`` (kept for inspection) and return the new path."""
    path = Path(path)
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    os.replace(path, aside)
    side = path.with_name(path.name + ".sha256")
    if side.exists():
        os.replace(side, aside.with_name(aside.name + ".sha256"))
    return aside


# -- torch files ------------------------------------------------------------------------------------------
def save_torch(state: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` ``state`` atomically, wrapped with the SHA-256 of its bytes."""
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    wrapped = {"format": TORCH_FORMAT, "sha256": sha256_bytes(payload),
               "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8)}
    with atomic_path(path) as tmp:
        torch.save(wrapped, tmp)


def load_torch(path: str | Path, role: str = "checkpoint") -> dict[str, Any]:
    """Load a file written by :func:`save_torch` as data (``weights_only``), its digest verified.

    A file without a digest (written before digests existed) is loaded as it is.

    Raises:
        DamagedFile: the digest does not match, or the file is not a readable torch file of data.
    """
    import torch

    data = _torch_load(path, path, role)
    if isinstance(data, dict) and data.get("format") == TORCH_FORMAT:
        payload = data.get("payload")
        if not isinstance(payload, torch.Tensor) or sha256_bytes(payload.numpy().tobytes()) != data.get("sha256"):
            raise DamagedFile(f"{role} {str(path)!r} is damaged (its content does not match its SHA-256)", path)
        return _torch_load(io.BytesIO(payload.numpy().tobytes()), path, role)
    return data


def _torch_load(source: Any, path: str | Path, role: str) -> Any:
    import pickle

    import torch

    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        what = ("holds Python objects or code, which kdzoo never runs" if "Weights only load failed" in str(exc)
                else "not a torch file")
        raise DamagedFile(f"{role} {str(path)!r} is damaged ({what})", path) from None
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError, TypeError, struct.error) as exc:
        reason = " ".join(str(exc).split())[:80] or type(exc).__name__
        raise DamagedFile(f"{role} {str(path)!r} is damaged (truncated or not a torch file: {reason})", path) from None


def verify_torch(path: str | Path, role: str = "checkpoint") -> None:
    """Raise :class:`DamagedFile` unless ``path`` loads and matches its digest."""
    load_torch(path, role)


# -- safetensors files ------------------------------------------------------------------------------------
def safetensors_bytes(tensors: dict[str, Any], metadata: dict[str, str]) -> bytes:
    """A safetensors file's bytes whose header metadata holds the SHA-256 of the whole file.

    The digest is computed over the file with 64 zeros in its place, then written over them (the
    header keeps its length, so every offset stays as it was).
    """
    from safetensors.torch import save

    data = bytearray(save(tensors, metadata={**metadata, SAFETENSORS_KEY: _PLACEHOLDER}))
    start = _placeholder_at(bytes(data))
    data[start:start + 64] = sha256_bytes(bytes(data)).encode()
    return bytes(data)


def _placeholder_at(data: bytes, digest: str = _PLACEHOLDER) -> int:
    (length,) = struct.unpack("<Q", data[:8])
    header = data[8:8 + length]
    key = f'"{SAFETENSORS_KEY}"'.encode()
    at = header.find(key)
    at = header.find(digest.encode(), at)
    if at < 0:
        raise ValueError("digest not found in the safetensors header")
    return 8 + at


def verify_safetensors(path: str | Path, role: str = "model file") -> bool:
    """Check a safetensors file against the digest in its header.

    Returns:
        ``True`` when it carries a digest and matches it, ``False`` when it carries none (an older
        file, or one kdzoo did not write).

    Raises:
        DamagedFile: the file is truncated, its header is not readable, or its bytes do not match.
    """
    data = Path(path).read_bytes()

    def damaged(why: str) -> DamagedFile:
        return DamagedFile(f"{role} {str(path)!r} is damaged ({why})", path)

    short = "truncated or corrupt: shorter than its header says"
    if len(data) < 8:
        raise damaged(short)
    (length,) = struct.unpack("<Q", data[:8])
    if length > len(data) - 8:
        raise damaged(short)
    try:
        header = json.loads(data[8:8 + length])
    except (ValueError, UnicodeDecodeError):
        raise damaged("truncated or corrupt: its header is not readable") from None
    if not isinstance(header, dict):
        raise damaged("truncated or corrupt: its header is not readable")
    digest = (header.get("__metadata__") or {}).get(SAFETENSORS_KEY)
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)
            and isinstance(v.get("data_offsets"), list) and len(v["data_offsets"]) == 2]
    if ends and 8 + length + max(ends) > len(data):
        raise damaged(short)
    if digest is None:
        return False
    if not isinstance(digest, str) or len(digest) != 64:
        raise damaged("its digest is not readable")
    blank = bytearray(data)
    start = _placeholder_at(data, digest)
    blank[start:start + 64] = _PLACEHOLDER.encode()
    if sha256_bytes(bytes(blank)) != digest:
        raise damaged("its content does not match its SHA-256")
    return True


# -- any file: a sidecar --------------------------------------------------------------------------------
def write_digest(path: str | Path) -> str:
    """Write ``NAME.sha256`` beside ``path`` (atomically) and return the digest."""
    path = Path(path)
    digest = sha256_file(path)
    with atomic_path(path.with_name(path.name + ".sha256")) as tmp:
        tmp.write_text(f"{digest}  {path.name}\n")
    return digest


def verify_digest(path: str | Path, role: str = "file", required: bool = False) -> bool:
    """Check ``path`` against its ``NAME.sha256`` sidecar.

    Returns:
        ``True`` when it matches, ``False`` when there is no sidecar and ``required`` is false.

    Raises:
        DamagedFile: the file does not match, or (``required``) has no sidecar.
    """
    path = Path(path)
    side = path.with_name(path.name + ".sha256")
    try:
        recorded = side.read_text().split()[0]
    except FileNotFoundError:
        if required:
            raise DamagedFile(f"{role} {str(path)!r} has no SHA-256 beside it ({side.name})", path) from None
        return False
    except (OSError, IndexError, UnicodeDecodeError):
        raise DamagedFile(f"{role} {str(path)!r}: its digest {side.name} is not readable", path) from None
    if sha256_file(path) != recorded:
        raise DamagedFile(f"{role} {str(path)!r} is damaged (its content does not match its SHA-256)", path)
    return True


__all__ = ["DamagedFile", "atomic_path", "load_torch", "move_aside", "safetensors_bytes", "save_torch", "sha256_bytes",
           "sha256_file", "verify_digest", "verify_safetensors", "verify_torch", "write_digest"]
