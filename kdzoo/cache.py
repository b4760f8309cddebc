"""``kdzoo cache``: what kdzoo keeps under ``$KDZOO_CACHE`` (default ``~/.cache/kdzoo``), and clearing it.

Everything listed here can be rebuilt: trained teachers (``teachers/KEY/``, retrained on next use),
teacher-output stores (``teacher-outputs/KEY.*``), decoded datasets and splits, and the listing
snapshot. The run index (``index.sqlite``) is a record of runs, not a cache: it is never listed or
cleared here. An entry whose lock another process holds (a teacher being trained) is skipped. No torch.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .contract.errors import ConfigError
from .paths import cache_root

KINDS = ("teachers", "teacher-outputs", "datasets", "splits", "listing")
DAY = 86400.0


@dataclass
class CacheEntry:
    """One removable item: a teacher folder, or a file of the other kinds."""

    kind: str
    key: str
    path: str
    bytes: int
    modified: float  # newest modification time of its files (seconds since the epoch)
    what: str = ""

    @property
    def age_days(self) -> float:
        return max(0.0, (time.time() - self.modified) / DAY)


def _size_and_time(path: Path) -> tuple[int, float]:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    stats = [p.stat() for p in files]
    return sum(s.st_size for s in stats), max((s.st_mtime for s in stats), default=path.stat().st_mtime)


def _teacher_note(folder: Path) -> str:
    """``mlp, 10 classes, 1x8x8, val acc 97.22`` from the cached teacher's metadata ("" when unreadable)."""
    try:
        meta = json.loads((folder / "teacher.json").read_text())
    except (OSError, ValueError):
        return "incomplete (no teacher.json: training was interrupted)"
    parts = [str(meta.get("name", "?"))]
    if meta.get("classes"):
        parts.append(f"{len(meta['classes'])} {'targets' if meta.get('task') == 'regression' else 'classes'}")
    if meta.get("input_shape"):
        parts.append("x".join(map(str, meta["input_shape"])))
    val = meta.get("val") or {}
    name = "acc" if "acc" in val else "mse" if "mse" in val else None
    if name:
        parts.append(f"val {name} {float(val[name]):.2f}")
    return ", ".join(parts)


def cache_entries(root: Path | None = None) -> list[CacheEntry]:
    """Every removable entry under the cache root, by kind then key."""
    root = cache_root() if root is None else Path(root)
    out = []
    for kind in KINDS:
        folder = root / kind
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.name.endswith(".lock") or ".tmp" in path.name:
                continue
            if kind == "teachers" and not path.is_dir():
                continue
            size, modified = _size_and_time(path)
            key = path.name if path.is_dir() else path.name.split(".")[0]
            what = _teacher_note(path) if kind == "teachers" else f"{path.suffix.lstrip('.') or 'folder'} file"
            out.append(CacheEntry(kind, key, str(path), size, modified, what))
    return out


def select(entries: list[CacheEntry], *, keys: list[str] = (), older_than_days: float | None = None,
           kinds: list[str] = ()) -> list[CacheEntry]:
    """The entries matching every given filter: a key prefix (any of ``keys``), an age, a kind."""
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ConfigError(f"kdzoo cache: unknown kind {bad[0]!r} (valid: {', '.join(KINDS)})")
    if older_than_days is not None and older_than_days < 0:
        raise ConfigError(f"kdzoo cache: --older-than must be >= 0 days, got {older_than_days}")
    chosen = [e for e in entries if (not kinds or e.kind in kinds)
              and (not keys or any(e.key.startswith(k) for k in keys))
              and (older_than_days is None or e.age_days > older_than_days)]
    missing = [k for k in keys if not any(e.key.startswith(k) for e in entries)]
    if missing:
        raise ConfigError(f"kdzoo cache: no cached entry has a key starting with {missing[0]!r} (see kdzoo cache)")
    return chosen


def clear(entries: list[CacheEntry]) -> tuple[list[CacheEntry], list[CacheEntry]]:
    """Remove ``entries``; returns ``(removed, skipped)`` (skipped: a teacher whose lock another process holds)."""
    removed, skipped = [], []
    for entry in entries:
        path = Path(entry.path)
        lock = FileLock(path.parent / f"{entry.key}.lock", thread_local=False) if entry.kind == "teachers" else None
        try:
            if lock is not None:
                lock.acquire(timeout=0)
        except Timeout:
            skipped.append(entry)
            continue
        try:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
            removed.append(entry)
        finally:
            if lock is not None:
                lock.release()
    return removed, skipped


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def table(entries: list[CacheEntry], root: Path) -> str:
    """The listing ``kdzoo cache`` prints: one line per entry, then the total."""
    lines = [f"{'kind':<16} {'key':<26} {'size':>9} {'age':>8}  what"]
    for e in entries:
        lines.append(f"{e.kind:<16} {e.key:<26} {human_bytes(e.bytes):>9} {e.age_days:>6.1f} d  {e.what}")
    lines.append(f"{len(entries)} entries, {human_bytes(sum(e.bytes for e in entries))} in {root}")
    return "\n".join(lines)


def rows(entries: list[CacheEntry]) -> list[dict[str, Any]]:
    return [dict(asdict(e), age_days=round(e.age_days, 3)) for e in entries]


def run_command(action: str, *, kinds: list[str] = (), keys: list[str] = (), older_than_days: float | None = None,
                everything: bool = False, as_json: bool = False) -> str:
    """What ``kdzoo cache [list|clear]`` prints; ``clear`` removes the selected entries first.

    Raises:
        ConfigError: ``clear`` without a filter or ``everything``; an unknown kind; a key no entry has.
    """
    entries = select(cache_entries(), keys=keys, older_than_days=older_than_days, kinds=kinds)
    if action == "list":
        return json.dumps(rows(entries), indent=2) if as_json else table(entries, cache_root())
    if not (keys or kinds or older_than_days is not None or everything):
        raise ConfigError("kdzoo cache clear needs a filter (--key, --kind, --older-than) or --all")
    removed, skipped = clear(entries)
    if as_json:
        return json.dumps({"removed": rows(removed), "skipped": rows(skipped)}, indent=2)
    lines = [f"removed {e.kind} {e.key} ({human_bytes(e.bytes)})" for e in removed]
    lines += [f"skipped {e.kind} {e.key}: another process holds its lock (a teacher in training)" for e in skipped]
    return "\n".join(lines + [f"freed {human_bytes(sum(e.bytes for e in removed))}"])


__all__ = ["CacheEntry", "KINDS", "cache_entries", "clear", "human_bytes", "rows", "run_command", "select", "table"]
