"""The old import path of the run index, which moved to :mod:`kdzoo.train.runindex` (the run driver
records each finished run in it, importing downwards)."""

from __future__ import annotations

from ..train.runindex import SCHEMA, folder_row, index_path, query, record  # noqa: F401 - re-exported

__all__ = ["SCHEMA", "folder_row", "index_path", "query", "record"]
