"""pytest fixtures for kdzoo and plugin test suites.

Import them into a ``conftest.py``::

    from kdzoo.pytest_fixtures import kdzoo_isolated, zoo  # noqa: F401
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(autouse=True)
def kdzoo_isolated(tmp_path_factory, monkeypatch):
    """Teachers, teacher outputs and the run index go to a per-session folder, never the user's
    cache; one CPU thread keeps tiny-model tests fast and repeatable."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("KDZOO_CACHE", str(base / "kdzoo-cache"))
    monkeypatch.setenv("KDZOO_INDEX", str(base / "kdzoo-index.sqlite"))
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def zoo():
    """Every installed plugin, loaded once per session."""
    from kdzoo.zoo.plugins import load_zoo

    return load_zoo()
