"""``python -m kdzoo_datafree RUN_DIR...``: redraw the accuracy curve of finished runs."""

from __future__ import annotations

from .grid import main

raise SystemExit(main())
