"""What a dataset *is*, independent of where it lies: a fingerprint of the files it reads.

A bench cell is keyed by its data's fingerprint instead of ``data.root``, so ``--data-root`` with a
trailing slash, a moved copy of the data, or a cluster node that mounts the data elsewhere finds
every finished cell again (:func:`kdzoo.train.effective.cell_key`), while a changed file re-runs
the cells that read it.

The fingerprint is a SHA-256 over each file's path relative to the dataset's folder and its
content hash. Content hashes are cached in ``$KDZOO_CACHE/data-fingerprints`` by absolute path,
size and modification time, so a large dataset is read in full once per machine, and later
fingerprints cost one ``stat`` per file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..paths import cache_root
from .files import CIFAR_LAYOUT, IDX_FILES, find_idx_folder
from .memory import ALIASES
from .relabel import split_spec

BUNDLED = {"digits", "mnist5k", "diabetes"}  # shipped inside a package: its version is their identity
IDX_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
CHUNK = 1 << 22  # 4 MiB reads: a large file never sits in memory whole


def data_sources(name: str, root: str | None) -> list[Path] | None:
    """The files (or folders, read whole) that dataset spec ``name`` reads under ``root``.

    Returns ``[]`` for data that ships inside a package (no files of the user's), and ``None``
    when the files cannot be found yet (the caller keys on the normalised path instead).
    Datasets kdzoo does not know (plugins') that read from ``root`` are fingerprinted as the
    whole ``root`` folder.
    """
    data_spec, _ = split_spec(name)
    dataset, _, arg = data_spec.partition(":")
    dataset = ALIASES.get(dataset, dataset)
    if dataset == "imagefolder":
        return [Path(arg)] if arg and Path(arg).is_dir() else None
    if dataset in BUNDLED or not root:
        return []
    base = Path(root)
    if dataset in IDX_FOLDERS:
        folder = find_idx_folder(base, IDX_FOLDERS[dataset])
        if folder is None:
            return None
        names = [stem for pair in IDX_FILES.values() for stem in pair]
        return [next(p for p in (folder / n, folder / f"{n}.gz") if p.is_file()) for n in names]
    if dataset in CIFAR_LAYOUT:
        folder_name = CIFAR_LAYOUT[dataset][0]
        folder = base if base.name == folder_name else base / folder_name
        return [folder] if folder.is_dir() else None
    return [base] if base.is_dir() else None


def _files(sources: list[Path]) -> list[tuple[str, Path]]:
    """Every file of ``sources`` with the name it is hashed under: a file's own name, or a folder's files'
    paths inside it (the folder may be called anything where it is copied)."""
    out = []
    for source in sources:
        if source.is_file():
            out.append((source.name, source))
            continue
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            out.append((path.relative_to(source).as_posix(), path))  # not the folder's own name: a copy may differ
    return out


def _cache_file() -> Path:
    return cache_root() / "data-fingerprints" / "hashes.json"


def _read_cache(path: Path) -> dict[str, list]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def content_hash(path: Path, cache: dict[str, list]) -> str:
    """SHA-256 of one file's bytes, reused from ``cache`` while its size and modification time hold."""
    stat = path.stat()
    where = str(path.resolve())
    known = cache.get(where)
    if known and known[0] == stat.st_size and known[1] == stat.st_mtime_ns:
        return known[2]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    cache[where] = [stat.st_size, stat.st_mtime_ns, digest.hexdigest()]
    return cache[where][2]


def data_fingerprint(name: str, root: str | None = None) -> str | None:
    """The identity of the data that dataset spec ``name`` reads under ``root`` (16 hex digits).

    Two copies of the same files, wherever they lie, give the same fingerprint; any changed, added
    or removed file gives another. ``None`` for data shipped inside a package (``digits``) and for
    data whose files cannot be found (a missing folder: no run can finish on it anyway).

    Example:
        ``data_fingerprint("fashion-mnist", "/data/fm") == data_fingerprint("fashion-mnist", "/mnt/copy/fm/")``
    """
    sources = data_sources(name, root)
    if not sources:
        return None
    cache_path = _cache_file()
    cache = _read_cache(cache_path)
    before = dict(cache)
    digest = hashlib.sha256()
    for label, path in _files(sources):
        digest.update(label.encode() + b"\0" + content_hash(path, cache).encode() + b"\n")
    if cache != before:
        _write_cache(cache_path, cache)
    return digest.hexdigest()[:16]


def _write_cache(path: Path, cache: dict[str, list]) -> None:
    """Merge with what another process wrote meanwhile, then replace atomically (a lost entry is only re-hashed)."""
    merged = {**_read_cache(path), **cache}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(merged))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        pass  # a read-only cache costs a re-hash next time, never a wrong key


def data_identity(name: str, root: str | None) -> dict[str, str] | None:
    """What a cell key records about its data files: ``{"fingerprint": ...}``; ``{"path": ...}`` (the
    normalised absolute path) while the files are missing; ``None`` when the data reads no files."""
    sources = data_sources(name, root)
    if sources == []:
        return None
    fingerprint = data_fingerprint(name, root) if sources else None
    if fingerprint is not None:
        return {"fingerprint": fingerprint}
    data_spec, _ = split_spec(name)
    dataset, _, arg = data_spec.partition(":")
    where = arg if ALIASES.get(dataset, dataset) == "imagefolder" else root
    return {"path": os.path.normpath(os.path.abspath(where or "."))}


__all__ = ["data_fingerprint", "data_identity", "data_sources"]
