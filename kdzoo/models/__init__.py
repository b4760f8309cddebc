"""Models: the wrapper every strategy sees (``wrapper``: KDModel, create/save/load), the registered
non-timm models (``simple``) and weight files (``weights``). ``from kdzoo.models import X`` keeps working
for the names the former ``kdzoo.models`` module defined."""

from __future__ import annotations

from .wrapper import KDModel, create_model, load_model, read_meta, read_state, save_model, verify_loaded

__all__ = ["KDModel", "create_model", "load_model", "read_meta", "read_state", "save_model", "verify_loaded"]
