"""An SQLite index of runs and benches (``kdzoo runs``); safe under concurrent writers.

It lives with the run driver, which records every run it finishes; the bench records benches in it
and ``kdzoo runs`` queries it, both importing downwards (``kdzoo.bench.runindex`` re-exports it).

The index only lists what the run folders hold, so a damaged index heals: it is moved aside
(``index.sqlite.damaged-TIME``) and rebuilt from the run folders it can find (beside the run being
recorded, and ``./runs``), with one line saying so.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from ..contract.errors import ConfigError
from ..integrity import move_aside
from ..paths import cache_root, read_status

SCHEMA = """CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, path TEXT NOT NULL, created REAL NOT NULL,
    strategy TEXT, student TEXT, teacher TEXT, data TEXT, metric TEXT, mean REAL, std REAL, info TEXT, state TEXT)"""


def index_path() -> Path:
    return Path(os.environ.get("KDZOO_INDEX") or cache_root() / "index.sqlite")


def _connect(near: Path | None = None) -> sqlite3.Connection:
    """Open the index; a damaged one is moved aside and rebuilt (``near``: a run folder whose
    siblings are read back into it)."""
    path = index_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"the run index folder {str(path.parent)!r} cannot be created ({exc.strerror})") from None
    try:
        con = _open(path)
        con.execute("SELECT count(*) FROM runs").fetchone()
        return con
    except sqlite3.OperationalError:
        raise  # busy or locked: the caller retries
    except sqlite3.DatabaseError as exc:
        return _rebuild(path, exc, near)


def _open(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(str(path), timeout=60)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(SCHEMA)
    columns = {row[1] for row in con.execute("PRAGMA table_info(runs)")}
    if "state" not in columns:  # an index written before runs recorded their final state
        try:
            con.execute("ALTER TABLE runs ADD COLUMN state TEXT")
        except sqlite3.OperationalError:
            pass  # another process added it first
    return con


def _rebuild(path: Path, exc: Exception, near: Path | None) -> sqlite3.Connection:
    """Move a damaged index aside and refill a new one from run folders (one process at a time)."""
    from filelock import FileLock

    with FileLock(str(path) + ".lock"):
        try:  # another process may have rebuilt it while we waited
            con = _open(path)
            con.execute("SELECT count(*) FROM runs").fetchone()
            return con
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError:
            pass
        aside = move_aside(path)
        for extra in ("-wal", "-shm"):
            Path(str(path) + extra).unlink(missing_ok=True)
        con = _open(path)
        folders = [f for f in {near.parent if near else None, Path("runs")} if f is not None and f.is_dir()]
        rows = [row for folder in folders for run in sorted(folder.iterdir())
                if (near is None or run.resolve() != near.resolve()) and (row := folder_row(run))]  # near: its caller records it
        with con:
            for row in rows:
                con.execute(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
        where = " and ".join(repr(str(f)) for f in folders) or "nowhere"
        print(f"kdzoo: the run index {str(path)!r} was damaged ({' '.join(str(exc).split())[:60]}); moved aside to "
              f"{aside.name} and rebuilt from {len(rows)} run folder(s) under {where}", file=sys.stderr)
        return con


def folder_row(run_dir: Path) -> dict[str, Any] | None:
    """The index row a finished (or failed) run folder stands for, or ``None`` for anything else."""
    import yaml

    status = read_status(run_dir) if run_dir.is_dir() else None
    if not status or status.get("state") not in ("done", "failed"):
        return None
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        summary = json.loads((run_dir / "summary.json").read_text()) if status["state"] == "done" else {}
        strategy = "+".join(m["name"] for m in config["strategy"])
        row = {"kind": "run", "path": str(run_dir.resolve()), "created": float(status.get("updated") or time.time()),
               "strategy": strategy, "student": config["student"]["name"],
               "teacher": (config.get("teacher") or {}).get("name"), "data": config["data"]["name"],
               "metric": summary.get("metric"), "mean": summary.get("test_best_mean"),
               "std": summary.get("test_best_std"), "state": status["state"],
               "info": json.dumps({"seeds": config["train"]["seeds"], **({"error": status["error"]}
                                                                       if "error" in status else {})})}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError):
        return None  # not a run folder (or one too damaged to list)
    return row


def record(kind: str, path: str | Path, info: dict[str, Any], **fields: Any) -> None:
    """Add one row (``kind`` is ``run`` or ``bench``); concurrent writers wait, none is lost.

    A run is recorded once, when it ends, with its final ``state`` (``done`` or ``failed``).
    """
    row = {"kind": kind, "path": str(Path(path).resolve()), "created": time.time(), "info": json.dumps(info, default=str)}
    row.update({k: v for k, v in fields.items() if k in {"strategy", "student", "teacher", "data", "metric", "mean", "std", "state"}})
    for attempt in range(20):
        try:
            with contextlib.closing(_connect(Path(path))) as con, con:  # closed: no handle outlives the write
                con.execute(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
            return
        except sqlite3.OperationalError:
            time.sleep(0.05 * (attempt + 1))
    raise RuntimeError(f"could not write the run index {index_path()}")


def query(kind: str | None = None, **filters: str) -> list[dict[str, Any]]:
    """Rows, newest first; ``filters`` are substring matches on strategy/student/teacher/data."""
    sql, args = "SELECT * FROM runs WHERE 1=1", []
    if kind:
        sql += " AND kind = ?"
        args.append(kind)
    for col, value in filters.items():
        if value:
            sql += f" AND {col} LIKE ?"
            args.append(f"%{value}%")
    with contextlib.closing(_connect()) as con, con:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute(sql + " ORDER BY id DESC", args)]


__all__ = ["SCHEMA", "folder_row", "index_path", "query", "record"]
