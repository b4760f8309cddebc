"""An SQLite index of runs and benches (``kdzoo runs``); safe under concurrent writers."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

SCHEMA = """CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, path TEXT NOT NULL, created REAL NOT NULL,
    strategy TEXT, student TEXT, teacher TEXT, data TEXT, metric TEXT, mean REAL, std REAL, info TEXT, state TEXT)"""


def index_path() -> Path:
    from ..paths import cache_root

    return Path(os.environ.get("KDZOO_INDEX") or cache_root() / "index.sqlite")


def _connect() -> sqlite3.Connection:
    path = index_path()
    path.parent.mkdir(parents=True, exist_ok=True)
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


def record(kind: str, path: str | Path, info: dict[str, Any], **fields: Any) -> None:
    """Add one row (``kind`` is ``run`` or ``bench``); concurrent writers wait, none is lost.

    A run is recorded once, when it ends, with its final ``state`` (``done`` or ``failed``).
    """
    row = {"kind": kind, "path": str(Path(path).resolve()), "created": time.time(), "info": json.dumps(info, default=str)}
    row.update({k: v for k, v in fields.items() if k in {"strategy", "student", "teacher", "data", "metric", "mean", "std", "state"}})
    for attempt in range(20):
        try:
            with _connect() as con:
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
    with _connect() as con:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute(sql + " ORDER BY id DESC", args)]
